// tap-reporter.mjs - a node --test reporter that writes flat TAP for meson: one
// line per test that has no subtests (and one for a test that failed in its
// own code around its subtests), diagnostics as comments. node's own TAP
// reporter nests subtests, which meson's TAP reader does not take.
export default async function* flatTap(source) {
  let n = 0;
  const children = []; // children[depth]: tests finished so far at that depth
  for await (const event of source) {
    if (event.type === 'test:diagnostic') {
      yield `# ${event.data.message}\n`;
      continue;
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { name, nesting, details } = event.data;
    const kids = children[nesting + 1] || 0;
    children[nesting + 1] = 0;
    children[nesting] = (children[nesting] || 0) + 1;
    const error = details && details.error;
    const own = error && !(error.failureType === 'subtestsFailed');
    if (kids > 0 && !own) continue; // a parent: its subtests were counted
    n += 1;
    const ms = details && details.duration_ms ? details.duration_ms.toFixed(0) : '0';
    if (event.type === 'test:pass') {
      yield `ok ${n} - ${name}\n# ${name}: ${ms} ms\n`;
    } else {
      const why = String((error && (error.cause || error).message) || error)
        .split('\n').map((l) => `# ${l}`).join('\n');
      yield `not ok ${n} - ${name}\n${why}\n`;
    }
  }
  yield `1..${n}\n`;
}
