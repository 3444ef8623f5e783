"""How an AgenticTask and a FleetNode move (status patch bodies, pure), the reasons vocabulary, and the rules on what
a task may make and owe (children, agent schedules, deliveries, upstream results); the controller, the worker and the
SDK all decide with these."""
