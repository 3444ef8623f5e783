"""What the node's model server serves, parsed from what each kind of server answers (recorded shapes)."""

from __future__ import annotations

import pytest

from foreman.api.tooling.scripted_llm import ScriptedLLM
from foreman.worker.inference import (
    Detail,
    InferenceProbe,
    Speeds,
    listed,
    llama_props,
    lmstudio_models,
    offers,
    ollama_context,
    ollama_names,
    ollama_sizes,
)

VLLM_MODELS = {
    "object": "list",
    "data": [{"id": "Qwen/Qwen2.5-Coder-32B-Instruct", "object": "model", "owned_by": "vllm", "max_model_len": 32768}],
}
OLLAMA_MODELS = {"object": "list", "data": [{"id": "qwen2.5-coder:7b", "object": "model", "owned_by": "library"}]}
LLAMA_PROPS = {
    "default_generation_settings": {"n_ctx": 16384, "params": {"temperature": 0.8}},
    "model_alias": "qwen2.5-coder",
    "total_slots": 1,
}
OLLAMA_SHOW = {"model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768, "qwen2.block_count": 28}}
OLLAMA_TAGS = {"models": [{"name": "qwen2.5-coder:7b", "size": 4683087332}, {"name": "llama3.1:8b"}]}
LMSTUDIO = {
    "data": [
        {"id": "qwen2.5-7b-instruct", "state": "loaded", "max_context_length": 32768},
        {"id": "phi-3", "state": "not-loaded", "max_context_length": 4096},
    ]
}


def test_openai_models_list_with_vllm_context() -> None:
    assert listed(VLLM_MODELS) == {"Qwen/Qwen2.5-Coder-32B-Instruct": Detail(context_tokens=32768)}
    assert listed(OLLAMA_MODELS) == {"qwen2.5-coder:7b": Detail()}


@pytest.mark.parametrize("garbage", [None, [], "x", {"data": "x"}, {"data": [1, {"id": 2}]}, {}])
def test_garbage_lists_nothing(garbage: object) -> None:
    assert listed(garbage) == {}
    assert lmstudio_models(garbage) == {}
    assert ollama_names(garbage) == []
    assert ollama_context(garbage) is None


def test_llama_server_props_old_and_new() -> None:
    assert llama_props(LLAMA_PROPS) == ("qwen2.5-coder", 16384)
    assert llama_props({"n_ctx": 4096}) == (None, 4096)  # older versions: n_ctx at the top
    assert llama_props({"default_generation_settings": {"n_ctx": True}}) == (None, None)


def test_ollama_show_tags_and_lmstudio() -> None:
    assert ollama_context(OLLAMA_SHOW) == 32768
    assert ollama_names(OLLAMA_TAGS) == ["qwen2.5-coder:7b", "llama3.1:8b"]
    assert lmstudio_models(LMSTUDIO) == {
        "qwen2.5-7b-instruct": Detail(32768, True),
        "phi-3": Detail(4096, False),
    }


def test_offers_join_listing_aliases_speeds_and_hand_given_names() -> None:
    models = offers(
        {"coder.gguf": Detail(16384, True)},
        aliases={"qwen2.5-coder:7b": "coder.gguf", "coder": "coder.gguf"},
        speeds={"coder.gguf": 41.234},
        manual=["coder", "extra-model"],  # an alias given by hand too: not a second model
    )
    assert [(m.name, m.aliases, m.context_tokens, m.loaded, m.tokens_per_second) for m in models] == [
        ("coder.gguf", ["coder", "qwen2.5-coder:7b"], 16384, True, 41.23),
        ("extra-model", [], None, None, None),
    ]


def test_speeds_are_a_moving_average() -> None:
    speeds = Speeds()
    speeds.observe("m", 10)
    assert speeds.by_model["m"] == 10
    speeds.observe("m", 20)
    assert speeds.by_model["m"] == pytest.approx(13)


async def test_the_probe_against_a_server_that_comes_and_goes() -> None:
    async with ScriptedLLM([], models=["coder.gguf"], context_tokens=16384) as llm:
        probe = InferenceProbe(llm.base_url)
        state = await probe.check()
        assert (state.ready, state.reason) == (True, "ModelsListed")
        assert probe.details == {"coder.gguf": Detail(context_tokens=16384)}  # /v1/models, then /props
        llm.down = True
        state = await probe.check()
        assert (state.ready, state.reason) == (False, "EndpointError")
        assert "503" in state.message
        url = llm.base_url
    state = await InferenceProbe(url).check()
    assert (state.ready, state.reason) == (False, "EndpointUnreachable")


def test_ollama_sizes_become_the_offers_size() -> None:
    assert ollama_sizes(OLLAMA_TAGS) == {"qwen2.5-coder:7b": 4.68}  # no size listed: not guessed
    assert ollama_sizes({"models": [{"name": "x", "size": "big"}, {"name": "y", "size": True}, "z"]}) == {}
    (offer,) = offers({"qwen2.5-coder:7b": Detail(32768, False, 4.68)}, aliases={}, speeds={})
    assert (offer.size_gb, offer.load_seconds) == (4.68, None)  # the controller estimates the load from the size
    (unknown,) = offers({"m": Detail()}, aliases={}, speeds={})
    assert (unknown.size_gb, unknown.load_seconds) == (None, None)
