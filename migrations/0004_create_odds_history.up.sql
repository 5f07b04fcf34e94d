-- Creates nfl.odds_history: append-only betting-line snapshots per game, source and observation time.

CREATE TABLE nfl.odds_history (
    game_id          text NOT NULL REFERENCES nfl.games (game_id),
    source           text NOT NULL,
    observed_at      timestamptz NOT NULL,
    odds_id          bigint GENERATED ALWAYS AS IDENTITY,
    spread_line      numeric(4,1),
    total_line       numeric(4,1),
    away_moneyline   integer,
    home_moneyline   integer,
    away_spread_odds integer,
    home_spread_odds integer,
    under_odds       integer,
    over_odds        integer,
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT odds_history_pkey PRIMARY KEY (game_id, source, observed_at),
    CONSTRAINT odds_history_odds_id_key UNIQUE (odds_id),
    CONSTRAINT odds_history_source_not_blank CHECK (source <> ''),
    CONSTRAINT odds_history_has_line CHECK (
        num_nonnulls(spread_line, total_line, away_moneyline, home_moneyline) > 0),
    CONSTRAINT odds_history_american_odds CHECK (
        abs(away_moneyline) >= 100 AND abs(home_moneyline) >= 100
        AND abs(away_spread_odds) >= 100 AND abs(home_spread_odds) >= 100
        AND abs(under_odds) >= 100 AND abs(over_odds) >= 100),
    CONSTRAINT odds_history_spread_line_half_points CHECK (spread_line * 2 = trunc(spread_line * 2)),
    CONSTRAINT odds_history_total_line_half_points CHECK (total_line > 0 AND total_line * 2 = trunc(total_line * 2))
);

CREATE INDEX odds_history_observed_at_idx ON nfl.odds_history (observed_at);

COMMENT ON TABLE nfl.odds_history IS 'Append-only history of betting lines: one snapshot per game, source (bookmaker or feed) and observation time. Rows are inserted, never updated (the ETL role gets INSERT only).';
COMMENT ON COLUMN nfl.odds_history.odds_id IS 'Surrogate id in insertion order (handy for audit and paging); the key is (game_id, source, observed_at).';
COMMENT ON COLUMN nfl.odds_history.spread_line IS 'Spread in points; positive means the home team is favored (nflverse convention).';
