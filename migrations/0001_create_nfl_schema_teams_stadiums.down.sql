-- Undoes 0001: drops stadiums, teams and the (then empty) nfl schema.

DROP TABLE nfl.stadiums;

DROP TABLE nfl.teams;

DROP SCHEMA nfl;
