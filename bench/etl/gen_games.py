"""Writes N synthetic nflverse-shaped games rows (all 46 columns, valid against the nfl.games contract).

usage: gen_games.py OUT.csv [N]   (default 1,000,000). Unique game_ids: seasons 1999.. x REG weeks 1-18
x ordered pairs of 32 team codes; gameday/weekday consistent; ~8 % unplayed, ~30 % without temp/wind.
"""
import csv, datetime, random, sys

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rng = random.Random(42)
TEAMS = ["ARI","ATL","BAL","BUF","CAR","CHI","CIN","CLE","DAL","DEN","DET","GB","HOU","IND","JAX","KC",
         "LV","LAC","LA","MIA","MIN","NE","NO","NYG","NYJ","PHI","PIT","SF","SEA","TB","TEN","WAS"]
PAIRS = [(a, h) for a in TEAMS for h in TEAMS if a != h]
HEADER = ("game_id,season,game_type,week,gameday,weekday,gametime,away_team,away_score,home_team,home_score,location,result,total,"
          "overtime,old_game_id,gsis,nfl_detail_id,pfr,pff,espn,ftn,away_rest,home_rest,away_moneyline,home_moneyline,spread_line,"
          "away_spread_odds,home_spread_odds,total_line,under_odds,over_odds,div_game,roof,surface,temp,wind,away_qb_id,home_qb_id,"
          "away_qb_name,home_qb_name,away_coach,home_coach,referee,stadium_id,stadium").split(",")
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
with open(out, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(HEADER)
    i = 0
    season = 1999
    while i < n:
        for week in range(1, 19):
            day0 = datetime.date(season, 9, 1) + datetime.timedelta(days=7 * (week - 1))
            for (a, h) in PAIRS:
                if i >= n: break
                i += 1
                d = day0 + datetime.timedelta(days=rng.randint(0, 6))
                played = rng.random() > 0.08
                hs, as_ = (rng.randint(0, 45), rng.randint(0, 45)) if played else (None, None)
                res = (hs - as_) if played else None
                tot = (hs + as_) if played else None
                outdoor = rng.random() > 0.3
                ml = rng.choice([-300, -150, 120, 250])
                w.writerow([f"{season}_{week:02d}_{a}_{h}", season, "REG", week, d.isoformat(), DAYS[d.weekday()], "13:00",
                            a, as_, h, hs, "Home", res, tot, (rng.randint(0, 1) if played else None),
                            f"{d.strftime('%Y%m%d')}{i % 100:02d}", 50000 + i, None, f"{d.strftime('%Y%m%d')}0{h.lower():>3}".replace(" ", "x")[:12],
                            None, 400000000 + i, None, 7, 7, ml, -ml, rng.choice([-3.5, 1, 2.5, 7]), -110, -110,
                            rng.choice([41.5, 44, 47.5]), -110, -110, rng.randint(0, 1), "outdoors" if outdoor else "dome",
                            "grass" if outdoor else "fieldturf", rng.randint(10, 90) if outdoor else None, rng.randint(0, 25) if outdoor else None,
                            "00-0033106", "00-0033873", "Jared Goff", "Patrick Mahomes", "Dan Campbell", "Andy Reid", "John Hussey",
                            f"{h[:3].ljust(3, 'X')}00", f"{h} Stadium"])
            if i >= n: break
        season += 1
print("rows", i, "last season", season)
