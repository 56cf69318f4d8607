#!/usr/bin/env python3
"""Checks a gridwatch case export (`gridwatch cases export`) without gridwatch.

Reads the zip with Python's own zipfile and checks that every file the manifest
lists is there with its size and SHA-256, that no file is there the manifest does
not list, that every evidence image matches its SHA-256 in chain.json, and that the
evidence chain recomputed from the case record and the items reaches the head.

    scripts/check-export.py case-12.zip [--head HEX]

--head: the chain head kept elsewhere when the case was first archived; the export
must end in it. Prints one line per problem and exits 1 if there is any; else prints
the case, the number of files and the head, and exits 0.
"""
import argparse
import hashlib
import json
import sys
import zipfile


def sha(data):
    return hashlib.sha256(data).hexdigest()


def read(z, name, problems):
    """The entry's bytes, or None (named in problems) if they do not match its CRC."""
    try:
        return z.read(name)
    except zipfile.BadZipFile as e:
        problems.append(f"{name}: does not match its CRC ({e})")
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("zip")
    ap.add_argument("--head")
    a = ap.parse_args()
    problems = []
    with zipfile.ZipFile(a.zip) as z:
        files = {n: read(z, n, problems) for n in z.namelist()}
    for core in ("manifest.json", "case.json", "chain.json"):
        if files.get(core) is None:
            print(f"{core}: missing or damaged; nothing more can be checked")
            sys.exit(1)
    manifest = json.loads(files["manifest.json"])
    if manifest.get("format") != "gridwatch case export 1":
        problems.append(f"manifest.json: unknown format {manifest.get('format')!r}")
    listed = set()
    for f in manifest["files"]:
        listed.add(f["path"])
        if f["path"] not in files:
            problems.append(f"{f['path']}: listed in the manifest, not in the zip")
            continue
        data = files[f["path"]]
        if data is not None and (len(data) != f["bytes"] or sha(data) != f["sha256"]):
            problems.append(f"{f['path']}: does not match the manifest")
    for n in sorted(set(files) - listed - {"manifest.json"}):
        problems.append(f"{n}: in the zip, not in the manifest")
    case = json.loads(files["case.json"])["case"]
    chain = json.loads(files["chain.json"])
    version = chain.get("version", 1)
    text = "gridwatch evidence chain {}\n{}\n{}\n{}\n{}".format(
        version, case["id"], case["kind"], case["cell"], case["first_seen_ms"])
    prev = sha(text.encode())
    if prev != chain["genesis"]:
        problems.append("chain.json: the genesis is not the case record's")
    for item in chain["items"]:
        name = f"evidence {item['id']} ({item['file']})"
        data = files.get(item["file"])
        if data is not None and sha(data) != item["sha256"]:
            problems.append(f"{name}: the image does not match its SHA-256")
        if item["chain"] is None:
            continue
        fields = [prev, item["sha256"], item["camera"], str(item["at_ms"])]
        if version >= 2:
            # version 2 chains the item's role too (empty when it has none)
            fields.append(item.get("role") or "")
        link = sha("\n".join(fields).encode())
        if link != item["chain"]:
            problems.append(f"{name}: does not follow the item before it")
        prev = item["chain"]
    if prev != chain["head"] or prev != manifest["chain_head"]:
        problems.append("chain.json: the chain does not end in its head")
    if a.head and a.head != prev:
        problems.append(f"the chain ends in {prev}, not in the head kept ({a.head})")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"case {case['id']}: {len(files)} files, chain head {prev}")


if __name__ == "__main__":
    main()
