#!/usr/bin/env python3
"""Regenerate data/nanp_regions.tsv: each geographic NANP area code and its region.

Source: the `phonenumbers` package on PyPI (libphonenumber metadata, Apache-2.0).
An area code is listed when libphonenumber accepts sample numbers in it as fixed
line or mobile numbers; toll-free, premium and personal ranges are left out, so
the importer rejects them. Usage as in gen_phone_timezones.py:

    PYTHONPATH=/tmp/pn python3 scripts/gen_nanp_regions.py > data/nanp_regions.tsv
"""
from collections import Counter

import phonenumbers as p

GEOGRAPHIC = {p.PhoneNumberType.FIXED_LINE, p.PhoneNumberType.MOBILE,
              p.PhoneNumberType.FIXED_LINE_OR_MOBILE}
print("# NANP area code -> ISO 3166 region, geographic area codes only.")
print(f"# Generated from libphonenumber {p.__version__} metadata,")
print("# Copyright (C) 2011 The Libphonenumber Authors, Apache License 2.0.")
print("# Regenerate with scripts/gen_nanp_regions.py; do not edit by hand.")
for npa in range(200, 1000):
    regions = Counter()
    for nxx in range(200, 1000, 7):
        n = p.parse(f"+1{npa}{nxx}4567")
        if p.is_valid_number(n) and p.number_type(n) in GEOGRAPHIC:
            regions[p.region_code_for_number(n)] += 1
    if regions:
        print(f"{npa}\t{regions.most_common(1)[0][0]}")
