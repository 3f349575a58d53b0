'use strict';
// The API linters the test command runs (ops/lint/run.sh calls this; CTest runs both):
//   node ops/lint/lint.js openapi  FILE CONFIG  Redocly's lint engine (@redocly/openapi-core,
//                                               what `redocly lint` runs) with CONFIG's rules
//                                               and the ignore file beside CONFIG; exit 1 on
//                                               any error (recommended-strict: every warning
//                                               is one)
//   node ops/lint/lint.js asyncapi FILE         the AsyncAPI parser's validation
//                                               (@asyncapi/parser, what `asyncapi validate`
//                                               runs) with its built-in ruleset; exit 1 on
//                                               any diagnostic of severity warning or worse
// Each problem is printed as FILE:LINE:COLUMN, severity, rule and message.
const fs = require('fs');
const path = require('path');

function where(file, range) {
  const start = range && range.start ? range.start : { line: 0, character: 0 };
  return `${path.relative(process.cwd(), file)}:${start.line + 1}:${start.character + 1}`;
}

async function openapi(file, configPath) {
  const redocly = require('@redocly/openapi-core');
  const config = await redocly.loadConfig({ configPath });
  const results = await redocly.lint({ ref: path.resolve(file), config: redocly.getMergedConfig(config) });
  const totals = redocly.getTotals(results);
  const version = require('@redocly/openapi-core/package.json').version;
  redocly.formatProblems(results, { format: 'codeframe', totals, version });
  console.error(`openapi: ${totals.errors} errors, ${totals.warnings} warnings, ` +
                `${totals.ignored} ignored (listed in .redocly.lint-ignore.yaml)`);
  return totals.errors === 0;
}

async function asyncapi(file) {
  const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');
  const parser = new Parser();
  const { document, diagnostics } =
      await parser.parse(fs.readFileSync(file, 'utf8'), { source: path.resolve(file) });
  const names = ['error', 'warning', 'information', 'hint'];
  let failing = 0;
  for (const d of diagnostics) {
    if (d.severity <= DiagnosticSeverity.Warning) failing++;
    console.error(`${where(file, d.range)} ${names[d.severity] || d.severity} ${d.code}: ` +
                  `${d.message}${d.path && d.path.length ? ` (at ${d.path.join('.')})` : ''}`);
  }
  console.error(`asyncapi: ${document ? 'parsed' : 'NOT parsed'}, ${diagnostics.length} ` +
                `diagnostics, ${failing} of severity warning or worse`);
  return Boolean(document) && failing === 0;
}

async function main() {
  const [mode, file, config] = process.argv.slice(2);
  let ok;
  if (mode === 'openapi' && file && config) ok = await openapi(file, config);
  else if (mode === 'asyncapi' && file) ok = await asyncapi(file);
  else {
    console.error('usage: node lint.js openapi FILE CONFIG | asyncapi FILE');
    process.exit(2);
  }
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
