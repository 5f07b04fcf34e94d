-- Undoes 0002: drops nfl.games (its indexes and comments go with it).

DROP TABLE nfl.games;
