// Simulator control panel: turns the panel's command list (GET /sim/api) into
// forms, posts {"command", "args"} to /sim/api, and shows the simulated devices'
// state once a second. It knows no command by name: what the panel lists is
// what it shows; denominations and sample QR payloads found in the state become
// one-click buttons.
"use strict";

(function () {
  const commandsBox = document.getElementById("commands");
  const resultBox = document.getElementById("result");
  const stateBox = document.getElementById("state");
  const stateAge = document.getElementById("state-age");

  let renderedKey = null;

  const el = window.kioskDom.el; // text-only DOM builder shared with the other page (dom.js)

  // The first value stored under `key` anywhere in the state (devices nest it).
  function findKey(value, key, depth) {
    if (!value || typeof value !== "object" || (depth || 0) > 4) return undefined;
    if (!Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, key)) return value[key];
    for (const inner of Object.values(value)) {
      const found = findKey(inner, key, (depth || 0) + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  // Used when the state names no denominations: common note values in minor
  // units. The simulated validator still decides whether it takes the note.
  const FALLBACK_DENOMINATIONS = [500, 1000, 2000, 5000, 10000, 20000, 50000];

  function denominationsIn(state) {
    let raw = findKey(state, "denominations");
    if (!Array.isArray(raw)) raw = FALLBACK_DENOMINATIONS;
    return raw.map((item) => {
      if (typeof item === "number") return { value: item, label: formatMinor(item) };
      if (item && typeof item === "object" && typeof item.minor === "number") {
        return { value: item.minor, label: item.label ? String(item.label) : formatMinor(item.minor) };
      }
      return null;
    }).filter(Boolean);
  }

  function formatMinor(minor) {
    const whole = Math.trunc(minor / 100);
    const cents = String(Math.abs(minor % 100)).padStart(2, "0");
    return whole + "." + cents;
  }

  function samplesIn(state) {
    const raw = findKey(state, "samples");
    if (Array.isArray(raw)) {
      return raw.map((item, i) => typeof item === "string" ? { label: "sample " + (i + 1), payload: item }
        : item && typeof item === "object" && typeof item.payload === "string"
          ? { label: String(item.label || "sample " + (i + 1)), payload: item.payload } : null).filter(Boolean);
    }
    if (raw && typeof raw === "object") {
      return Object.entries(raw).filter(([, v]) => typeof v === "string").map(([label, payload]) => ({ label, payload }));
    }
    return [];
  }

  function argKind(spec) {
    if (Array.isArray(spec)) return { kind: "choice", choices: spec };
    if (spec && typeof spec === "object") {
      if (Array.isArray(spec.choices)) return { kind: "choice", choices: spec.choices };
      return argKind(spec.type);
    }
    const name = String(spec || "str").toLowerCase();
    if (name.includes("|")) return { kind: "choice", choices: String(spec).split("|") };  // "ok|near_end|out"
    if (name.startsWith("int")) return { kind: "int" };
    if (name.startsWith("bool")) return { kind: "bool" };
    return { kind: "str" };
  }

  async function run(command, args) {
    resultBox.textContent = "Running " + command + "…";
    resultBox.dataset.ok = "";
    let shown;
    let ok = false;
    try {
      const response = await fetch("/sim/api", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ command, args }),
      });
      const body = await response.json();
      ok = response.ok && body && body.ok === true;
      shown = command + " " + JSON.stringify(args) + "\n" + JSON.stringify(body, null, 2);
    } catch (err) {
      shown = command + ": no answer from the kiosk (" + err + ")";
    }
    resultBox.textContent = shown;
    resultBox.dataset.ok = ok ? "true" : "false";
    refresh();
  }

  function commandForm(entry, denominations, samples) {
    const name = String(entry.command);
    const specs = entry.args && typeof entry.args === "object" ? entry.args : {};
    const argNames = Object.keys(specs);
    const form = el("form", { class: "command", "data-command": name },
      el("h3", { text: name }),
      entry.help ? el("p", { class: "help", text: String(entry.help) }) : null);
    form.addEventListener("submit", (event) => event.preventDefault());
    const readers = {};
    let samplesShown = false;

    for (const arg of argNames) {
      const kind = argKind(specs[arg]);
      if (kind.kind === "choice" && argNames.length === 1) {
        // One choice argument: one button per value, one click per action.
        form.append(el("div", { class: "choices" }, ...kind.choices.map((choice) =>
          el("button", { type: "button", "data-arg": arg, "data-value": String(choice), text: String(choice),
            onclick: () => run(name, { [arg]: choice }) }))));
        continue;
      }
      if (kind.kind === "bool" && argNames.length === 1) {
        // A switch (door, stacker full): "open: yes" / "open: no", one click each.
        form.append(el("div", { class: "choices" }, ...[true, false].map((value) =>
          el("button", { type: "button", "data-arg": arg, "data-value": String(value),
            text: arg + ": " + (value ? "yes" : "no"), onclick: () => run(name, { [arg]: value }) }))));
        continue;
      }
      let input;
      if (kind.kind === "choice") {
        input = el("select", { name: arg }, ...kind.choices.map((c) => el("option", { value: String(c), text: String(c) })));
        readers[arg] = () => kind.choices[input.selectedIndex];
      } else if (kind.kind === "int") {
        input = el("input", { type: "number", step: "1", name: arg });
        readers[arg] = () => (input.value.trim() === "" ? undefined : Number.parseInt(input.value, 10));
      } else if (kind.kind === "bool") {
        input = el("input", { type: "checkbox", name: arg });
        readers[arg] = () => input.checked;
      } else {
        input = el("input", { type: "text", name: arg, autocomplete: "off", spellcheck: "false" });
        // Empty means "not given": the command's own default applies.
        readers[arg] = () => (input.value === "" ? undefined : input.value);
      }
      form.append(el("label", {}, arg + " (" + kind.kind + ")", input));

      if (kind.kind === "int" && argNames.length === 1 && denominations.length
          && /minor|denomination|value|amount|note/i.test(arg + " " + name)) {
        form.append(el("div", { class: "choices" }, ...denominations.map((d) =>
          el("button", { type: "button", "data-arg": arg, "data-value": String(d.value), text: d.label,
            onclick: () => run(name, { [arg]: d.value }) }))));
      }
      if (kind.kind === "str" && !samplesShown && samples.length && /qr|code|scan|payload/i.test(arg + " " + name)) {
        samplesShown = true;
        form.append(el("div", { class: "choices" }, ...samples.map((s) =>
          el("button", { type: "button", "data-sample": s.label, title: s.payload, text: s.label,
            onclick: () => { input.value = s.payload; run(name, { [arg]: s.payload }); } }))));
      }
    }

    const onlyChoices = argNames.length === 1 && ["choice", "bool"].includes(argKind(specs[argNames[0]]).kind);
    if (!onlyChoices) {
      form.append(el("button", { type: "button", class: "run", "data-run": name, text: "Run " + name,
        onclick: () => {
          const args = {};
          for (const [arg, read] of Object.entries(readers)) {
            const value = read();
            if (value !== undefined && !(typeof value === "number" && Number.isNaN(value))) args[arg] = value;
          }
          run(name, args);
        } }));
    }
    return form;
  }

  function renderCommands(commands, state) {
    const denominations = denominationsIn(state);
    const samples = samplesIn(state);
    const key = JSON.stringify([commands, denominations, samples]);
    if (key === renderedKey) return;
    renderedKey = key;
    const forms = (Array.isArray(commands) ? commands : [])
      .filter((c) => c && typeof c === "object" && typeof c.command === "string")
      .map((c) => commandForm(c, denominations, samples));
    commandsBox.replaceChildren(...(forms.length ? forms : [el("p", { text: "The panel lists no commands." })]));
  }

  async function refresh() {
    try {
      const response = await fetch("/sim/api", { cache: "no-store" });
      const body = await response.json();
      if (!response.ok) throw new Error(body && body.error ? body.error : "HTTP " + response.status);
      renderCommands(body.commands, body.state);
      stateBox.textContent = JSON.stringify(body.state, null, 2);
      stateAge.textContent = "(updated " + new Date().toLocaleTimeString() + ")";
    } catch (err) {
      stateAge.textContent = "(kiosk not answering: " + err.message + ")";
    }
  }

  refresh();
  setInterval(refresh, 1000);
})();
