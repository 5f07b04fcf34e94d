-- Undoes 0004: drops nfl.odds_history (and its identity sequence).

DROP TABLE nfl.odds_history;
