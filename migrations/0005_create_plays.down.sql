-- Undoes 0005: drops the season partitions, then the partitioned nfl.plays table.

DROP TABLE nfl.plays_default;

DROP TABLE nfl.plays_2025;

DROP TABLE nfl.plays_2024;

DROP TABLE nfl.plays_2023;

DROP TABLE nfl.plays;
