-- Creates nfl.weather: at most one weather observation per game, in US units with range checks.

CREATE TABLE nfl.weather (
    game_id            text PRIMARY KEY REFERENCES nfl.games (game_id),
    observed_at        timestamptz,
    source             text NOT NULL,
    temp_f             numeric(4,1),
    feels_like_f       numeric(4,1),
    wind_mph           numeric(4,1),
    wind_gust_mph      numeric(4,1),
    wind_direction_deg smallint,
    humidity_pct       numeric(4,1),
    precipitation_in   numeric(5,2),
    conditions         text,
    loaded_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT weather_source_not_blank CHECK (source <> ''),
    CONSTRAINT weather_conditions_not_blank CHECK (conditions <> ''),
    CONSTRAINT weather_temp_f_range CHECK (temp_f BETWEEN -60 AND 130),
    CONSTRAINT weather_feels_like_f_range CHECK (feels_like_f BETWEEN -90 AND 150),
    CONSTRAINT weather_wind_mph_range CHECK (wind_mph BETWEEN 0 AND 150),
    CONSTRAINT weather_wind_gust_mph_range CHECK (wind_gust_mph BETWEEN 0 AND 200 AND wind_gust_mph >= wind_mph),
    CONSTRAINT weather_wind_direction_range CHECK (wind_direction_deg BETWEEN 0 AND 360),
    CONSTRAINT weather_humidity_pct_range CHECK (humidity_pct BETWEEN 0 AND 100),
    CONSTRAINT weather_precipitation_non_negative CHECK (precipitation_in >= 0),
    CONSTRAINT weather_has_measurement CHECK (
        num_nonnulls(temp_f, feels_like_f, wind_mph, wind_gust_mph, wind_direction_deg, humidity_pct,
                     precipitation_in, conditions) > 0)
);

COMMENT ON TABLE nfl.weather IS 'Weather for a game (at most one row per game, upserted by the ETL): temperatures in degrees Fahrenheit, wind in mph, precipitation in inches.';
COMMENT ON COLUMN nfl.weather.observed_at IS 'When the observation was taken; NULL when the source gives no time (e.g. the schedule''s kickoff temp/wind).';
COMMENT ON COLUMN nfl.weather.source IS 'Where the observation came from, e.g. nflverse or a weather API name.';
COMMENT ON COLUMN nfl.weather.wind_direction_deg IS 'Direction the wind blows from, degrees clockwise from north.';
