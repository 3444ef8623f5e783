"""Shared status: how an AgenticTask and a FleetNode move (status patch bodies, pure), the reasons vocabulary, and when
a TaskSchedule fires (cron); the controller, the worker and the SDK all decide with these."""
