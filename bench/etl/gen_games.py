"""Writes N synthetic nflverse-shaped games rows, deterministically, from the real slice.

usage: gen_games.py SLICE.csv OUT.csv [N]   (default 1,000,000)

Keys are enumerated so they are unique: seasons 1999.. x REG weeks 1-18 x the 992 ordered pairs of
the slice's 32 team codes (18 x 992 = 17,856 games per season; 1,000,000 rows reach season 2054).
The key-derived columns follow the key (game_id, season, game_type=REG, week, gameday in that week
with the matching weekday, old_game_id and pfr from the date). Every other column (scores, result,
total, overtime, ids, rest, odds, roof, surface, temp, wind, QBs, coaches, referee, stadium) is
copied from real slice row (i mod 842), so the null pattern, widths and value mix are the source's.
All rows are valid against the nfl.games contract (unplayed template rows give warnings only).
"""
import csv, datetime, sys

slice_path, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
with open(slice_path, newline="", encoding="utf-8-sig") as f:
    r = csv.reader(f)
    header = next(r)
    rows = [row for row in r if row]
col = {name: i for i, name in enumerate(header)}
teams = sorted({row[col["away_team"]] for row in rows} | {row[col["home_team"]] for row in rows})
pairs = [(a, h) for a in teams for h in teams if a != h]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(header)
    i = 0
    season = 1999
    while i < n:
        for week in range(1, 19):
            day0 = datetime.date(season, 9, 1) + datetime.timedelta(days=7 * (week - 1))
            for p, (a, h) in enumerate(pairs):
                if i >= n:
                    break
                t = rows[i % len(rows)][:]
                d = day0 + datetime.timedelta(days=p % 7)
                t[col["game_id"]] = f"{season}_{week:02d}_{a}_{h}"
                t[col["season"]] = str(season)
                t[col["game_type"]] = "REG"
                t[col["week"]] = str(week)
                t[col["gameday"]] = d.isoformat()
                t[col["weekday"]] = DAYS[d.weekday()]
                t[col["away_team"]] = a
                t[col["home_team"]] = h
                t[col["location"]] = "Home"
                t[col["old_game_id"]] = f"{d.strftime('%Y%m%d')}{p % 100:02d}"
                t[col["pfr"]] = f"{d.strftime('%Y%m%d')}{p % 10}{h.lower():x>3}"
                w.writerow(t)
                i += 1
            if i >= n:
                break
        season += 1
print("rows", i, "seasons 1999 ..", season if i % (18 * len(pairs)) else season - 1)
