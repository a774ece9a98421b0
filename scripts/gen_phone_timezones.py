#!/usr/bin/env python3
"""Regenerate data/phone_timezones.tsv from libphonenumber's prefix-to-timezone map.

The data comes from the `phonenumbers` package on PyPI, the Python port of
Google's libphonenumber (Apache-2.0). Usage:

    pip download --no-deps -d /tmp/pn phonenumbers && cd /tmp/pn && unzip -o -q phonenumbers-*.whl
    PYTHONPATH=/tmp/pn python3 scripts/gen_phone_timezones.py > data/phone_timezones.tsv
"""
import phonenumbers
from phonenumbers.tzdata.data0 import data

print("# E.164 prefix (no +) -> IANA time zones, longest prefix wins.")
print(f"# Generated from libphonenumber {phonenumbers.__version__} (timezones/map_data),")
print("# Copyright (C) 2011 The Libphonenumber Authors, Apache License 2.0.")
print("# Regenerate with scripts/gen_phone_timezones.py; do not edit by hand.")
for prefix in sorted(data, key=lambda p: (len(p), p)):
    print(f"{prefix}\t{','.join(data[prefix])}")
