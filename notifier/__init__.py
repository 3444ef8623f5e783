"""`foreman notifier`: delivers finished tasks' results (webhooks, CloudEvents, chat, log), at least once."""
