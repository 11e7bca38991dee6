// Loads a file written by `roundtable export --automerge` with the reference JavaScript Automerge
// implementation and prints what a reader of it would see: its heads and the group's name.
// Usage: node load_automerge.mjs FILE.automerge
import { readFileSync } from "node:fs";
import * as Automerge from "@automerge/automerge";

const bytes = readFileSync(process.argv[2]);
const doc = Automerge.load(new Uint8Array(bytes));
const heads = Automerge.getHeads(doc).slice().sort();
const group = doc.group ?? {};
const count = (name) => Object.keys(doc[name] ?? {}).length;
console.log(JSON.stringify({
  heads,
  name: group.name ?? null,
  members: count("members"),
  threads: count("threads"),
  messages: count("messages"),
}));
