-- Undoes 0008: drops nfl.task_results.

DROP TABLE nfl.task_results;
