#!/usr/bin/env python3
"""Regenerate the sample lead lists in campaigns/leads/ (deterministic).

Numbers use fictional ranges where the country has them: NANP 555-01XX lines
and Ofcom's drama ranges (07700 900xxx, 020 7946 0xxx, 0161 496 0xxx). A few
rows are deliberately bad (typos, foreign numbers, empty phones) and a few
repeat, so an import shows rejects and duplicates.

    python3 scripts/gen_sample_leads.py
"""
import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "campaigns" / "leads"
rng = random.Random(20261123)

IN_FIRST = ["Aarav", "Vivaan", "Aditya", "Ananya", "Diya", "Ishaan", "Kavya", "Meera", "Rohan", "Saanvi",
            "Arjun", "Priya", "Rahul", "Sneha", "Vikram", "Lakshmi", "Farhan", "Gurpreet", "Nisha", "Suresh"]
IN_LAST = ["Sharma", "Verma", "Iyer", "Reddy", "Nair", "Patel", "Gupta", "Khan", "Singh", "Das",
           "Menon", "Joshi", "Kulkarni", "Banerjee", "Chatterjee", "Rao", "Pillai", "Mehta"]
IN_CITY = ["Mumbai", "Delhi", "Bengaluru", "Chennai", "Hyderabad", "Pune", "Kolkata", "Ahmedabad", "Jaipur", "Kochi"]
US_FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
            "Maria", "Carlos", "Aisha", "Wei", "Nguyen", "Olivia", "Ethan", "Sofia", "Liam", "Emma"]
US_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
           "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Lee", "Chen"]
# Area code, state, city: several zones, and Idaho's 208 which spans two.
US_AREAS = [("212", "NY", "New York"), ("305", "FL", "Miami"), ("404", "GA", "Atlanta"), ("512", "TX", "Austin"),
            ("602", "AZ", "Phoenix"), ("303", "CO", "Denver"), ("415", "CA", "San Francisco"),
            ("619", "CA", "San Diego"), ("702", "NV", "Las Vegas"), ("312", "IL", "Chicago"),
            ("208", "ID", "Boise"), ("808", "HI", "Honolulu"), ("907", "AK", "Anchorage")]
UK_FIRST = ["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Grace",
            "Priya", "Mohammed", "Siobhan", "Callum", "Megan", "Rhys"]
UK_LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas", "Roberts", "Khan",
           "Patel", "Murphy", "Campbell", "Hughes"]


def write(name, header, rows):
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / name, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def india(n=2000):
    rows = []
    for i in range(n):
        mobile = f"{rng.choice('6789')}{rng.randrange(10**9):09d}"
        style = rng.random()
        if style < 0.4:
            phone = mobile
        elif style < 0.6:
            phone = f"+91 {mobile[:5]} {mobile[5:]}"
        elif style < 0.8:
            phone = f"0{mobile}"
        else:
            phone = f"91-{mobile[:5]}-{mobile[5:]}"
        name = f"{rng.choice(IN_FIRST)} {rng.choice(IN_LAST)}"
        product = rng.choice(["Motor", "Health", "Health Family Floater", "Two-wheeler"])
        premium = rng.randrange(2500, 45000)
        rows.append([name, phone, f"POL{rng.randrange(10**8):08d}", product, premium,
                     f"2026-12-{rng.randrange(1, 29):02d}", rng.choice(IN_CITY)])
    bad = [[rows[3][0], "98765 4321", "POL00000001", "Motor", 4100, "2026-12-05", "Pune"],
           [rows[4][0], "", "POL00000002", "Health", 9900, "2026-12-06", "Delhi"],
           [rows[5][0], "+44 7700 900123", "POL00000003", "Motor", 5100, "2026-12-07", "Kochi"],
           [rows[6][0], "98765-4321O", "POL00000004", "Health", 7200, "2026-12-08", "Mumbai"]]
    rows[100:100] = bad
    rows += [list(rows[i]) for i in (10, 20, 30)]
    write("in-insurance-renewal.csv",
          ["name", "mobile", "policy_no", "product", "premium_inr", "due_date", "city"], rows)


def us(n=1000):
    rows = []
    lines = rng.sample([(a, l) for a in US_AREAS for l in range(100)], n)
    for (area, state, city), l in lines:
        line = f"01{l:02d}"
        style = rng.random()
        if style < 0.5:
            phone = f"({area}) 555-{line}"
        elif style < 0.75:
            phone = f"1-{area}-555-{line}"
        else:
            phone = f"+1 {area} 555 {line}"
        rows.append([rng.choice(US_FIRST), rng.choice(US_LAST), phone, f"{rng.randrange(100, 9999)} Oak St",
                     city, state, f"{rng.randrange(10000, 99999)}", rng.randrange(90, 420)])
    bad = [["Test", "Row", "(800) 555-0100", "1 Main St", "Nowhere", "TX", "75001", 100],
           ["Jo", "Canuck", "(416) 555-0199", "2 Queen St", "Toronto", "ON", "00000", 150]]
    rows[50:50] = bad
    write("us-home-solar.csv",
          ["first_name", "last_name", "phone", "address", "city", "state", "zip", "monthly_bill_usd"], rows)


def uk(n=1500):
    rows = []
    for kind, k in rng.sample([(kind, k) for kind in range(3) for k in range(1000)], n):
        if kind == 0:
            phone = f"07700 900{k:03d}"
        elif kind == 1:
            phone = f"020 7946 0{k:03d}"
        else:
            phone = f"+44 161 496 0{k:03d}"
        rows.append([f"{rng.choice(UK_FIRST)} {rng.choice(UK_LAST)}", phone,
                     f"{rng.choice(['SW1A', 'M1', 'LS1', 'B2', 'EH1', 'CF10'])} {rng.randrange(1, 9)}{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTU')}",
                     rng.choice(["ADSL 17Mb", "Copper 40Mb", "Copper 80Mb"]), f"2027-0{rng.randrange(1, 9)}-01"])
    rows[20:20] = [["Premium Line", "09098 790123", "SW1A 1AA", "ADSL 17Mb", "2027-01-01"]]
    write("uk-broadband.csv", ["customer", "telephone", "postcode", "current_package", "contract_end"], rows)


india()
us()
uk()


def registries():
    """Sample national registries that list a few of the sample leads, so a
    run shows numbers refused (files in campaigns/dnd/)."""
    out = OUT.parent / "dnd"
    out.mkdir(parents=True, exist_ok=True)

    def phones(name, column):
        with open(OUT / name, newline="", encoding="utf-8") as f:
            return [row[column] for row in csv.DictReader(f) if row[column]]

    pick = random.Random(7)
    india = pick.sample(phones("in-insurance-renewal.csv", "mobile")[110:], 60)
    with open(out / "in-ncpr-sample.csv", "w", encoding="utf-8") as f:
        f.write("number,preference,days,band\n")
        for i, p in enumerate(india):
            # A third fully blocked; a third accept category 1 (insurance
            # may call); a third accept only real estate and education.
            pref = ["0", "1#4", "2#3"][i % 3]
            band = ",1-5,10:00-18:00" if i % 6 == 1 else ""
            f.write(f"{p.replace(',', '')},{pref}{band}\n")
    us_numbers = pick.sample(phones("us-home-solar.csv", "phone")[60:], 25)
    (out / "us-dnc-sample.txt").write_text("# US National Do Not Call Registry extract (sample)\n" + "\n".join(us_numbers) + "\n")
    uk_numbers = pick.sample(phones("uk-broadband.csv", "telephone")[30:], 25)
    (out / "uk-tps-sample.txt").write_text("# UK Telephone Preference Service extract (sample)\n" + "\n".join(uk_numbers) + "\n")


registries()
