"""When a TaskSchedule fires: the cron expression (`expression`) and how close together its fires come (`intervals`)."""
