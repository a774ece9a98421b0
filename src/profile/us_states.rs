//! US state telemarketing hours that are stricter than the federal
//! 08:00-21:00 (TCPA, 47 CFR 64.1200(c)(1)), in the called party's local
//! time. A state is told by the number's area code (NANP area codes lie
//! within one state); a number carries its state's rule wherever the
//! person is, which can only narrow the hours. Each state's window is the
//! narrowest its statute allows for a telephone solicitation; the rule
//! is applied to every US campaign, informational ones too (the safe
//! side). The states that also bar telephone solicitations on their
//! legal holidays (PA, AL, LA, MS, RI, UT) carry them as rules
//! ([`Holiday`]), so they never run out; each list is the state's legal
//! holidays with the federal ones added (a holiday wrongly kept only
//! costs a day's calls to the state), read from secondary sources.
//!
//! Kept to the statutes we could name; a state missing here is dialled
//! on the federal hours. Where only a secondary source could be read
//! (AL's live-call rule, KY, WY, OR, MI, NV, PA's Saturday: said beside
//! each), the stricter
//! reading is kept, as a rule wrongly kept only costs calls; SD's
//! weekday-only rule is for automated dialing systems, which a
//! predictive dialler is taken to be.

use chrono::Weekday::{Mon, Thu};

use super::{DayWindow, WeekPlan, every_day};
use crate::compliance::hours::Holiday::{self, Easter, ElectionDay, Fixed, Last, Nth};

/// One state's rule.
struct StateRule {
    /// USPS code.
    state: &'static str,
    /// The statute, for people.
    law: &'static str,
    /// Its area codes, overlays included.
    area_codes: &'static [u16],
    /// The window per day, Monday first; `None`: no calls that day.
    plan: WeekPlan,
    /// At most this many calls to the person in any 24 hours on the same
    /// subject (one campaign), when the statute sets it.
    per_24h: Option<u32>,
    /// Holidays with no calls, when the statute bars them.
    holidays: &'static [Holiday],
}

// The federal holidays (5 U.S.C. 6103), each state list's base.
const NEW_YEAR: Holiday = Fixed(1, 1);
const KING: Holiday = Nth(1, Mon, 3);
const WASHINGTON: Holiday = Nth(2, Mon, 3);
const MEMORIAL: Holiday = Last(5, Mon);
const JUNETEENTH: Holiday = Fixed(6, 19);
const INDEPENDENCE: Holiday = Fixed(7, 4);
const LABOR: Holiday = Nth(9, Mon, 1);
const COLUMBUS: Holiday = Nth(10, Mon, 2);
const VETERANS: Holiday = Fixed(11, 11);
const THANKSGIVING: Holiday = Nth(11, Thu, 4);
const CHRISTMAS: Holiday = Fixed(12, 25);
const GOOD_FRIDAY: Holiday = Easter(-2);
const MARDI_GRAS: Holiday = Easter(-47);

/// Pennsylvania's legal holidays (44 P.S. 11), which 73 P.S. 2245(a)(10)
/// (Act 73 of 2019) bars: Good Friday, Flag Day and Election Day beside
/// the federal ones.
const PA_HOLIDAYS: &[Holiday] = &[
    NEW_YEAR,
    KING,
    WASHINGTON,
    GOOD_FRIDAY,
    MEMORIAL,
    Fixed(6, 14),
    JUNETEENTH,
    INDEPENDENCE,
    LABOR,
    COLUMBUS,
    ElectionDay,
    VETERANS,
    THANKSGIVING,
    CHRISTMAS,
];

/// Alabama's state holidays (Code of Ala. 1-3-8): Mardi Gras (kept
/// statewide, though a holiday in two counties), Confederate Memorial Day
/// (fourth Monday of April) and Jefferson Davis's birthday (first Monday
/// of June) beside the federal ones.
const AL_HOLIDAYS: &[Holiday] = &[
    NEW_YEAR,
    KING,
    WASHINGTON,
    MARDI_GRAS,
    Nth(4, Mon, 4),
    MEMORIAL,
    Nth(6, Mon, 1),
    JUNETEENTH,
    INDEPENDENCE,
    LABOR,
    COLUMBUS,
    VETERANS,
    THANKSGIVING,
    CHRISTMAS,
];

/// Louisiana's legal holidays (La. R.S. 1:55; Mardi Gras kept statewide):
/// the Battle of New Orleans (8 January), Robert E. Lee (19 January), Good
/// Friday, Jefferson Davis (3 June), Huey P. Long (30 August), general
/// election day (every year here, though 1:55 names even years) and All
/// Saints' Day beside the federal ones. 1:55 also makes every Saturday a
/// holiday in some parishes (Orleans among them); the Public Service
/// Commission's list of days with no calls does not include Saturdays,
/// so they stay open (checked against two compliance charts).
const LA_HOLIDAYS: &[Holiday] = &[
    NEW_YEAR,
    Fixed(1, 8),
    KING,
    Fixed(1, 19),
    WASHINGTON,
    MARDI_GRAS,
    GOOD_FRIDAY,
    MEMORIAL,
    Fixed(6, 3),
    JUNETEENTH,
    INDEPENDENCE,
    Fixed(8, 30),
    LABOR,
    COLUMBUS,
    ElectionDay,
    Fixed(11, 1),
    VETERANS,
    THANKSGIVING,
    CHRISTMAS,
];

/// Rhode Island's holidays (R.I. Gen. Laws 25-1-1): Victory Day (second
/// Monday of August) and the general election day beside the federal ones.
const RI_HOLIDAYS: &[Holiday] = &[
    NEW_YEAR,
    KING,
    WASHINGTON,
    MEMORIAL,
    JUNETEENTH,
    INDEPENDENCE,
    Nth(8, Mon, 2),
    LABOR,
    COLUMBUS,
    ElectionDay,
    VETERANS,
    THANKSGIVING,
    CHRISTMAS,
];

/// Mississippi's legal holidays (Miss. Code 3-3-7): Confederate Memorial
/// Day (last Monday of April) beside the federal ones.
const MS_HOLIDAYS: &[Holiday] = &[
    NEW_YEAR,
    KING,
    WASHINGTON,
    Last(4, Mon),
    MEMORIAL,
    JUNETEENTH,
    INDEPENDENCE,
    LABOR,
    COLUMBUS,
    VETERANS,
    THANKSGIVING,
    CHRISTMAS,
];

/// Utah's legal holidays (Utah Code 63G-1-301): Pioneer Day (24 July)
/// beside the federal ones.
const UT_HOLIDAYS: &[Holiday] = &[
    NEW_YEAR,
    KING,
    WASHINGTON,
    MEMORIAL,
    JUNETEENTH,
    INDEPENDENCE,
    Fixed(7, 24),
    LABOR,
    COLUMBUS,
    VETERANS,
    THANKSGIVING,
    CHRISTMAS,
];

const EIGHT_TO_EIGHT: WeekPlan = every_day(DayWindow::hm((8, 0), (20, 0)));

/// Monday to Saturday `w`, no calls on Sunday.
const fn not_sunday(w: DayWindow) -> WeekPlan {
    [Some(w), Some(w), Some(w), Some(w), Some(w), Some(w), None]
}

const RULES: &[StateRule] = &[
    StateRule {
        state: "FL",
        law: "Florida Telephone Solicitation Act, Fla. Stat. 501.059(8): 08:00-20:00, at most 3 calls in 24 hours",
        area_codes: &[
            239, 305, 321, 324, 352, 386, 407, 448, 561, 645, 656, 689, 727, 728, 754, 772, 786,
            813, 850, 863, 904, 941, 954,
        ],
        plan: EIGHT_TO_EIGHT,
        per_24h: Some(3),
        holidays: &[],
    },
    StateRule {
        state: "OK",
        law: "Oklahoma Telephone Solicitation Act, 15 O.S. 775C.4: 08:00-20:00, at most 3 calls in 24 hours",
        area_codes: &[405, 539, 572, 580, 918],
        plan: EIGHT_TO_EIGHT,
        per_24h: Some(3),
        holidays: &[],
    },
    StateRule {
        state: "WA",
        law: "RCW 80.36.390: 08:00-20:00",
        area_codes: &[206, 253, 360, 425, 509, 564],
        plan: EIGHT_TO_EIGHT,
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "MD",
        law: "Maryland Stop the Spam Calls Act, Md. Com. Law 14-4503: 08:00-20:00, at most 3 calls in 24 hours",
        area_codes: &[227, 240, 301, 410, 443, 667],
        plan: EIGHT_TO_EIGHT,
        per_24h: Some(3),
        holidays: &[],
    },
    StateRule {
        state: "MA",
        law: "Mass. Gen. Laws c. 159C, 3: 08:00-20:00",
        area_codes: &[339, 351, 413, 508, 617, 774, 781, 857, 978],
        plan: EIGHT_TO_EIGHT,
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "CT",
        law: "Conn. Gen. Stat. 42-288a: 09:00-20:00",
        area_codes: &[203, 475, 860, 959],
        plan: every_day(DayWindow::hm((9, 0), (20, 0))),
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "TX",
        law: "Tex. Bus. & Com. Code 301.051: 09:00-21:00, Sunday 12:00-21:00",
        area_codes: &[
            210, 214, 254, 281, 325, 346, 361, 409, 430, 432, 469, 512, 682, 713, 726, 737, 806,
            817, 830, 832, 903, 915, 936, 940, 945, 956, 972, 979,
        ],
        plan: {
            let day = DayWindow::hm((9, 0), (21, 0));
            let mut p = every_day(day);
            p[6] = Some(DayWindow::hm((12, 0), (21, 0)));
            p
        },
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "PA",
        law: "Pennsylvania Telemarketer Registration Act, 73 P.S. 2245.2: 08:00-21:00, Saturday 08:00-12:00 (Saturday afternoon is a half-holiday under 44 P.S. 11, per secondary sources), Sunday 13:30-21:00; not on its legal holidays (73 P.S. 2245(a)(10))",
        area_codes: &[
            215, 223, 267, 272, 412, 445, 484, 570, 582, 610, 717, 724, 814, 835, 878,
        ],
        plan: {
            let mut p = every_day(DayWindow::hm((8, 0), (21, 0)));
            p[5] = Some(DayWindow::hm((8, 0), (12, 0)));
            p[6] = Some(DayWindow::hm((13, 30), (21, 0)));
            p
        },
        per_24h: None,
        holidays: PA_HOLIDAYS,
    },
    StateRule {
        state: "LA",
        law: "La. R.S. 45:844.17: 08:00-20:00, not on Sunday; not on its legal holidays (per secondary sources)",
        area_codes: &[225, 318, 337, 457, 504, 985],
        plan: not_sunday(DayWindow::hm((8, 0), (20, 0))),
        per_24h: None,
        holidays: LA_HOLIDAYS,
    },
    StateRule {
        state: "MS",
        law: "Miss. Code 77-3-725: 08:00-20:00, not on Sunday; not on its legal holidays (per secondary sources)",
        area_codes: &[228, 601, 662, 769],
        plan: not_sunday(DayWindow::hm((8, 0), (20, 0))),
        per_24h: None,
        holidays: MS_HOLIDAYS,
    },
    StateRule {
        state: "UT",
        law: "Utah Code 13-25a-103: 08:00-21:00, not on Sunday; not on its legal holidays",
        area_codes: &[385, 435, 801],
        plan: not_sunday(DayWindow::hm((8, 0), (21, 0))),
        per_24h: None,
        holidays: UT_HOLIDAYS,
    },
    StateRule {
        state: "RI",
        law: "R.I. Gen. Laws 5-61-3.4: weekdays 09:00-18:00, Saturday 10:00-17:00, not on Sunday; not on its holidays",
        area_codes: &[401],
        plan: {
            let week = DayWindow::hm((9, 0), (18, 0));
            [
                Some(week),
                Some(week),
                Some(week),
                Some(week),
                Some(week),
                Some(DayWindow::hm((10, 0), (17, 0))),
                None,
            ]
        },
        per_24h: None,
        holidays: RI_HOLIDAYS,
    },
    StateRule {
        state: "AL",
        law: "Ala. Admin. Code r. 770-X-5-.17 (automated calls; live calls per secondary sources): 08:00-20:00, not on Sunday or its state holidays",
        area_codes: &[205, 251, 256, 334, 483, 659, 938],
        plan: not_sunday(DayWindow::hm((8, 0), (20, 0))),
        per_24h: None,
        holidays: AL_HOLIDAYS,
    },
    StateRule {
        state: "KY",
        law: "KRS 367.46955 (per secondary sources): 10:00-21:00",
        area_codes: &[270, 364, 502, 606, 859],
        plan: every_day(DayWindow::hm((10, 0), (21, 0))),
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "NM",
        law: "NMSA 1978 57-12-22(B): 09:00-21:00",
        area_codes: &[505, 575, 957],
        plan: every_day(DayWindow::hm((9, 0), (21, 0))),
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "SD",
        law: "SDCL 37-30-28 (automated telephone dialing systems): weekdays 09:00-21:00; SDCL 37-30A-3: not on Sunday",
        area_codes: &[605],
        plan: {
            let day = DayWindow::hm((9, 0), (21, 0));
            [
                Some(day),
                Some(day),
                Some(day),
                Some(day),
                Some(day),
                None,
                None,
            ]
        },
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "WY",
        law: "Wyo. Stat. 40-12-302(d) (per secondary sources): 08:00-20:00",
        area_codes: &[307],
        plan: EIGHT_TO_EIGHT,
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "OR",
        law: "ORS 646.563 as amended by Or. Laws 2025 ch. 580 (HB 3865, from 2026-01-01; per secondary sources): 08:00-20:00, at most 3 calls in 24 hours",
        area_codes: &[458, 503, 541, 971],
        plan: EIGHT_TO_EIGHT,
        per_24h: Some(3),
        holidays: &[],
    },
    StateRule {
        state: "MI",
        law: "Mich. Comp. Laws 750.540e (per secondary sources, which read it as a 09:00-21:00 rule for solicitations; the statute is a harassment one, kept on the safe side): 09:00-21:00",
        area_codes: &[
            231, 248, 269, 313, 517, 586, 616, 679, 734, 810, 906, 947, 989,
        ],
        plan: every_day(DayWindow::hm((9, 0), (21, 0))),
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "NV",
        law: "NRS 598.0918 (per secondary sources, which disagree: 08:00-21:00 or 09:00-20:00; the narrower kept): 09:00-20:00",
        area_codes: &[702, 725, 775],
        plan: every_day(DayWindow::hm((9, 0), (20, 0))),
        per_24h: None,
        holidays: &[],
    },
    StateRule {
        state: "MN",
        law: "Minn. Stat. 325E.27: 09:00-21:00",
        area_codes: &[218, 320, 507, 612, 651, 763, 952],
        plan: every_day(DayWindow::hm((9, 0), (21, 0))),
        per_24h: None,
        holidays: &[],
    },
];

/// How many calls a US number's state allows to the person in any 24
/// hours on one subject; `None` where no statute of ours limits it.
pub fn calls_per_24h(digits: u64) -> Option<u32> {
    rule_of(digits)?.per_24h
}

/// The rule of the state a US number's area code lies in: a table by
/// area code, built once, as every check of a US number asks (three
/// times: hours, holidays, calls in 24 hours) and the simulator checks
/// every dial.
fn rule_of(digits: u64) -> Option<&'static StateRule> {
    static BY_AREA_CODE: std::sync::OnceLock<[u8; 1000]> = std::sync::OnceLock::new();
    let table = BY_AREA_CODE.get_or_init(|| {
        let mut t = [0u8; 1000];
        for (i, r) in RULES.iter().enumerate() {
            for &npa in r.area_codes {
                // Index + 1 (0: no rule); fewer than 255 rules.
                t[usize::from(npa)] = u8::try_from(i + 1).unwrap_or(0);
            }
        }
        t
    });
    let i = *table.get(usize::from(area_code(digits)?))?;
    RULES.get(usize::from(i).checked_sub(1)?)
}

/// The area code of a NANP number's digits (`1NPANXXXXXX`).
fn area_code(digits: u64) -> Option<u16> {
    (10_000_000_000..20_000_000_000)
        .contains(&digits)
        .then(|| u16::try_from((digits / 10_000_000) % 1000).ok())
        .flatten()
}

/// The legal holidays on which the state a US number's area code lies in
/// bars calls; empty where it bars none (or we know of none).
pub fn holidays_of(digits: u64) -> &'static [Holiday] {
    rule_of(digits).map_or(&[], |r| r.holidays)
}

/// The stricter hours of the state a US number's area code lies in, with
/// the state and its statute; `None` where the federal hours stand.
pub fn hours_of(digits: u64) -> Option<(&'static str, &'static str, WeekPlan)> {
    rule_of(digits).map(|r| (r.state, r.law, r.plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Regulation;

    #[test]
    fn a_state_is_told_by_its_area_code() {
        let (state, _, plan) = hours_of(13_055_550_123).expect("Florida");
        assert_eq!(state, "FL");
        assert_eq!(plan, EIGHT_TO_EIGHT);
        assert_eq!(hours_of(12_125_550_123), None, "New York keeps 08:00-21:00");
        let (state, _, plan) = hours_of(12_145_550_123).expect("Texas");
        assert_eq!(state, "TX");
        assert_eq!(plan[6], Some(DayWindow::hm((12, 0), (21, 0))));
        assert_eq!(hours_of(15_045_550_123).expect("Louisiana").2[6], None);
        assert_eq!(hours_of(4_475_550_123), None, "not a NANP number");
        assert_eq!(calls_per_24h(13_055_550_123), Some(3), "Florida");
        assert_eq!(calls_per_24h(14_105_550_123), Some(3), "Maryland");
        assert_eq!(calls_per_24h(12_145_550_123), None, "Texas");
    }

    /// The states added from their statutes (and, where only those could
    /// be read, secondary sources): a window per number's area code.
    #[test]
    fn the_narrower_states_keep_their_windows() {
        let nine_to_nine = Some(DayWindow::hm((9, 0), (21, 0)));
        let alabama = hours_of(12_055_550_123).expect("Alabama");
        assert_eq!(
            (alabama.0, alabama.2[0], alabama.2[6]),
            ("AL", Some(DayWindow::hm((8, 0), (20, 0))), None)
        );
        assert_eq!(
            hours_of(15_025_550_123).expect("Kentucky").2[2],
            Some(DayWindow::hm((10, 0), (21, 0)))
        );
        assert_eq!(
            hours_of(15_055_550_123).expect("New Mexico").2[6],
            nine_to_nine
        );
        let dakota = hours_of(16_055_550_123).expect("South Dakota").2;
        assert_eq!(
            (dakota[4], dakota[5], dakota[6]),
            (nine_to_nine, None, None)
        );
        assert_eq!(hours_of(13_075_550_123).expect("Wyoming").2, EIGHT_TO_EIGHT);
        assert_eq!(hours_of(15_035_550_123).expect("Oregon").2, EIGHT_TO_EIGHT);
        assert_eq!(calls_per_24h(15_415_550_123), Some(3), "Oregon");
        assert_eq!(
            hours_of(13_135_550_123).expect("Michigan").2,
            every_day(DayWindow::hm((9, 0), (21, 0)))
        );
        assert_eq!(
            hours_of(17_025_550_123).expect("Nevada").2,
            every_day(DayWindow::hm((9, 0), (20, 0)))
        );
        let pennsylvania = hours_of(12_155_550_123).expect("Pennsylvania").2;
        assert_eq!(pennsylvania[5], Some(DayWindow::hm((8, 0), (12, 0))));
        assert_eq!(
            hours_of(17_015_550_123),
            None,
            "North Dakota keeps 08:00-21:00"
        );
    }

    /// Every state's hours lie within the federal hours (they may only
    /// narrow them), no area code is listed twice, and each is a real
    /// geographic NANP code (2-9, not N11, not 555).
    #[test]
    fn every_state_only_narrows_the_federal_hours() {
        let federal = super::super::us::Us.hours();
        assert!(RULES.len() < 255, "rule_of's table holds an index in a u8");
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            for (day, w) in r.plan.iter().enumerate() {
                if let (Some(w), Some(f)) = (w, federal[day]) {
                    assert!(w.within(&f), "{} day {day}", r.state);
                }
            }
            for &npa in r.area_codes {
                assert!(seen.insert(npa), "{npa} listed twice");
                assert!(
                    (200..1000).contains(&npa) && npa % 100 != 11 && npa != 555,
                    "{npa}"
                );
            }
            assert!(!r.law.is_empty());
        }
    }
}
