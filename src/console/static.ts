/**
 * The console's only script and style sheet, served from `/static/` (the
 * Content-Security-Policy allows no inline script or style).
 *
 * The script connects every `[data-live]` region to its Server-Sent Events
 * stream and replaces the region's HTML with each `update` event — unless
 * the operator is using it (a box ticked or a field focused inside), so a
 * selection for replay is not wiped by a refresh.
 */
export const CONSOLE_SCRIPT = `'use strict';
for (const region of document.querySelectorAll('[data-live]')) {
  const source = new EventSource(region.dataset.live);
  source.addEventListener('update', (event) => {
    if (region.querySelector('input:checked') !== null || region.contains(document.activeElement)) return;
    region.innerHTML = event.data;
    region.dataset.updated = String(Number(region.dataset.updated || '0') + 1);
  });
  addEventListener('pagehide', () => source.close());
}
`;

/** The console's style sheet, served as `/static/console.css`. */
export const CONSOLE_STYLE = `
:root { --fg: #1d2330; --muted: #5d6778; --line: #d9dee7; --bg: #f7f8fb; --accent: #2456c7; --bad: #b42318; --good: #177245; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 24px; align-items: baseline; padding: 10px 20px; background: #1d2330; color: #fff; }
header .brand { font-weight: 600; }
header nav a { color: #c9d4ee; margin-right: 16px; text-decoration: none; }
header nav a.current { color: #fff; border-bottom: 2px solid #fff; }
main { padding: 16px 20px 40px; max-width: 1400px; }
h1 { font-size: 20px; margin: 4px 0 12px; }
h2 { font-size: 16px; margin: 20px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f6; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .02em; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12.5px; }
pre { background: #fff; border: 1px solid var(--line); padding: 8px; overflow: auto; max-height: 420px; }
a { color: var(--accent); }
form.filters { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: end; margin-bottom: 12px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input, select, button { font: inherit; padding: 4px 6px; }
button { cursor: pointer; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; padding: 4px 12px; }
button.danger { background: var(--bad); border-color: var(--bad); }
.state { font-weight: 600; }
.state-CONFIRMED, .ok { color: var(--good); }
.state-CANCELLED, .state-CANCELLING { color: var(--warn); }
.state-FAILED, .bad { color: var(--bad); }
.flash { padding: 8px 12px; border-radius: 4px; margin-bottom: 12px; }
.flash.done { background: #e3f4ea; border: 1px solid #9fd3b4; }
.flash.error { background: #fdecea; border: 1px solid #f1a9a0; }
.muted { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; border: 1px solid var(--line); padding: 10px 14px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.actions { display: flex; flex-wrap: wrap; gap: 12px; }
.actions details { background: #fff; border: 1px solid var(--line); padding: 8px 12px; min-width: 260px; }
.actions form { display: flex; flex-direction: column; gap: 6px; margin-top: 8px; }
.spaced { margin-top: 10px; }
.stack { display: flex; flex-direction: column; gap: 6px; margin-top: 8px; }
.pager { margin-top: 10px; display: flex; gap: 16px; }
.live-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: var(--good); margin-right: 6px; }
`;
