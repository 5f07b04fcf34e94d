-- Undoes 0007: drops nfl.data_quality_reports (and its identity sequence).

DROP TABLE nfl.data_quality_reports;
