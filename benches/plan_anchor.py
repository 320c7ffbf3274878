"""The plan benchmark's anchor: the plain script a team might write instead of subsync.

For every manifest (PyYAML's C loader, `CSafeLoader`), gather the account's desired subscribers
from its inline list and its subscriber files (gzip read with Python's own module), read the
account's confirmed subscribers from the SQLite ledger, and write what to add, sorted, as JSON.
No validation, no positions, no limits: what subsync must beat by its target (issue 25).

Usage: plan_anchor.py MANIFEST_DIR LEDGER_DB OUT_JSON; prints the number to add.
"""

import gzip
import json
import os
import sqlite3
import sys

import yaml

manifests, ledger, out = sys.argv[1:4]
db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
confirmed_of = (
    "SELECT c.subscriber FROM confirmed c JOIN accounts a ON a.id = c.account_id "
    "WHERE a.official_account = ?"
)
accounts = []
for name in sorted(os.listdir(manifests)):
    if not name.endswith((".yaml", ".yml")):
        continue
    with open(os.path.join(manifests, name), encoding="utf-8") as f:
        spec = yaml.load(f, Loader=yaml.CSafeLoader)["spec"]
    desired = {str(s) for s in spec.get("subscribers", [])}
    for entry in spec.get("subscriberFiles", []):
        path = os.path.join(manifests, entry)
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    desired.add(line)
    account = spec["officialAccount"]
    confirmed = {row[0] for row in db.execute(confirmed_of, (account,))}
    accounts.append(
        {
            "official_account": account,
            "desired": len(desired),
            "confirmed": len(confirmed),
            "add": sorted(desired - confirmed),
        }
    )
with open(out, "w", encoding="utf-8") as f:
    json.dump({"accounts": accounts}, f)
print(sum(len(a["add"]) for a in accounts))
