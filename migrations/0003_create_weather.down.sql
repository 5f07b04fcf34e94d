-- Undoes 0003: drops nfl.weather.

DROP TABLE nfl.weather;
