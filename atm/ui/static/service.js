// The technician's screens: the PIN pad (opened only by the physical service switch) and
// the service menu as pages behind tabs, so nothing important sits screens down. Data
// comes from atm/service_menu.py; every word from the [service] section of the language
// files. Actions go back as {"action": "service_action", "do": ...}.
"use strict";

(function () {
  const screens = window.kioskScreens;
  const MAX_PIN_LENGTH = 12;
  const PAGES = ["status", "alerts", "cash", "cassettes", "tests", "pairing", "logs", "activation"];
  let page = "status";   // the tab a technician is on survives the screen being redrawn
  // So does what a technician typed or chose: the kiosk redraws the menu on every event (an
  // alert, a sensor, a printer status). A booking the kiosk accepted starts its form afresh,
  // and so does a new login.
  const drafts = new Map();
  let redrawPage = null;
  function draft(name, fresh) {
    if (!drafts.has(name)) drafts.set(name, fresh());
    return drafts.get(name);
  }

  function digitPad(ui, onKey, label) {
    const pad = ui.el("div", { class: "pinpad", "aria-label": label || null });
    for (const key of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "back"]) {
      const shown = key === "clear" ? "C" : key === "back" ? "\u232b" : key;
      pad.append(ui.el("button", { type: "button", class: "btn", "data-key": key, text: shown,
        onclick: () => onKey(key) }));
    }
    return pad;
  }

  screens.register("maintenance_login", (d, ui) => {
    drafts.clear();
    let pin = "";
    const shown = ui.el("div", { class: "pin-display", "data-field": "pin", "aria-label": "PIN" });
    const enter = ui.actionButton(ui.t("service.enter"), "service_login", { kind: "primary", fields: () => ({ pin }) });
    const redraw = () => {
      shown.textContent = "\u2022".repeat(pin.length) || "\u00a0";
      enter.disabled = pin.length === 0;
    };
    const press = (key) => {
      if (key === "clear") pin = "";
      else if (key === "back") pin = pin.slice(0, -1);
      else if (pin.length < MAX_PIN_LENGTH) pin += key;
      redraw();
    };
    ui.onKey((event) => {
      if (/^[0-9]$/.test(event.key)) press(event.key);
      else if (event.key === "Backspace") press("back");
      else if (event.key === "Enter" && pin) enter.click();
    });
    redraw();
    return [
      ui.el("h1", { text: ui.t("service.login_title") }),
      ui.el("p", { class: "muted", text: ui.t("service.enter_pin") }),
      ui.el("p", { class: "error", "data-field": "error", role: "alert", text: ui.say(d.error) || "\u00a0" }),
      shown,
      digitPad(ui, press),
      ui.countdown(d.timeout_s),
      ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("screen.cancel"), "cancel"), enter),
    ];
  });

  // options.draft names the form the action books: it is cleared once the kiosk accepted it.
  function service(ui, label, what, options) {
    const opts = Object.assign({ do: what }, options || {});
    if (opts.draft) {
      const name = opts.draft;
      opts.onDone = () => { drafts.delete(name); if (redrawPage) redrawPage(); };
    }
    return ui.actionButton(label, "service_action", opts);
  }

  // A table with many columns becomes one block per row in portrait (style.css, "wide"),
  // each cell under its header's word, so no column is squeezed to a letter wide.
  const WIDE_TABLE_COLUMNS = 4;
  function table(ui, field, headers, rows) {
    for (const row of rows) {
      [...row.children].forEach((cell, i) => { if (i < headers.length) cell.dataset.label = headers[i]; });
    }
    return ui.el("table", { class: headers.length >= WIDE_TABLE_COLUMNS ? "status wide" : "status", "data-field": field },
      ui.el("thead", {}, ui.el("tr", {}, ...headers.map((h) => ui.el("th", { text: h })))),
      ui.el("tbody", {}, ...rows));
  }

  // The scan test's camera picture: reloaded a moment after each image arrives, so a slow
  // kiosk never piles up requests; the chain ends once the image leaves the page (another
  // tab, a redrawn screen) and the kiosk's timers end with each redraw.
  const PREVIEW_EVERY_MS = 250;
  const PREVIEW_RETRY_MS = 1000;
  let previewCount = 0;
  let scanWasRunning = false;
  let scrollToPreview = false;  // below the buttons on a portrait screen: shown once it has a size

  function scanPreview(ui, scan) {
    if (!scan.preview) {
      return ui.el("p", { class: "muted", "data-field": "scan_no_preview", text: ui.t("service.scan_no_preview") });
    }
    const note = ui.el("figcaption", { class: "muted", "data-field": "scan_preview_state",
      text: ui.t("service.scan_preview_waiting") });
    const img = ui.el("img", { "data-field": "scan_preview", alt: ui.t("service.scan_preview") });
    const reload = () => {
      if (img.isConnected) img.src = "/service/camera.jpg?n=" + String(++previewCount);
    };
    const figure = ui.el("figure", { class: "scan-preview" }, img, note);
    img.addEventListener("load", () => {
      note.textContent = ui.t("service.scan_preview");
      if (scrollToPreview && img.isConnected) {
        scrollToPreview = false;
        figure.scrollIntoView({ block: "nearest" });
      }
      ui.later(reload, PREVIEW_EVERY_MS);
    });
    img.addEventListener("error", () => {
      note.textContent = ui.t("service.scan_preview_waiting");
      ui.later(reload, PREVIEW_RETRY_MS);
    });
    img.src = "/service/camera.jpg?n=" + String(++previewCount);
    return figure;
  }

  function statusClass(value) {
    return typeof value === "string" && /^[A-Za-z_]+$/.test(value) ? "state-" + value : null;
  }

  // Minor units typed on the keypad as the kiosk writes money ("1,000.00 EUR"), so that the
  // technician reads back the value that will be booked, not a bare number.
  function moneyFormat(info) {
    const digits = Number.isInteger(info.minor_digits) && info.minor_digits >= 0 ? info.minor_digits : 2;
    const currency = typeof info.currency === "string" ? info.currency : "";
    return (minor) => {
      const raw = String(minor || "").replace(/^0+(?=\d)/, "");
      if (!/^\d+$/.test(raw)) return "\u2013";
      const padded = raw.padStart(digits + 1, "0");
      const whole = padded.slice(0, padded.length - digits).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
      return (digits ? whole + "." + padded.slice(padded.length - digits) : whole) + " " + currency;
    };
  }

  // Dispenses whose outcome is unknown (a power cut): per cassette, what was asked and what
  // the technician counted as paid out and rejected, booked as `atm cassettes resolve` books it.
  function unknownDispenses(c, ui) {
    const items = Array.isArray(c.unknown_dispenses) ? c.unknown_dispenses : [];
    const head = ui.el("h2", { text: ui.t("service.unknown_title") });
    if (!items.length) return [head, ui.el("p", { class: "ok", "data-field": "unknown_dispenses", text: ui.t("service.unknown_none") })];
    // counts: request id -> {exited: {cassette: "n"}, rejected: {...}};
    // active: [request id, "exited" | "rejected", cassette] the keypad types into
    const form = draft("unknown", () => ({ counts: new Map(), active: null }));
    const counts = form.counts;
    const listed = new Set(items.map((item) => ui.text(item.request_id)));
    if (form.active && !listed.has(form.active[0])) form.active = null;
    let active = form.active;
    const redraws = [];
    const redraw = () => { for (const fn of redraws) fn(); };
    const per = (rows) => (Array.isArray(rows) ? rows : []).map((r) =>
      ui.text(r.cassette) + ": " + ui.text(r.notes) + (r.value ? " \u00d7 " + ui.text(r.value) : "")).join(", ") || "0";
    const blocks = items.map((item) => {
      const id = ui.text(item.request_id);
      const cassettes = (Array.isArray(item.cassettes) ? item.cassettes : []).map((x) => ui.text(x));
      const mine = counts.get(id) || { exited: {}, rejected: {} };
      counts.set(id, mine);
      if (!active && cassettes.length) active = form.active = [id, "exited", cassettes[0]];
      const entry = (kind, cassette) => ui.el("button", { type: "button", class: "btn", "data-entry": kind,
        "data-cassette": cassette, onclick: () => { active = form.active = [id, kind, cassette]; redraw(); } });
      const asked = new Map((Array.isArray(item.asked) ? item.asked : []).map((r) => [ui.text(r.cassette), r]));
      const rows = cassettes.map((cassette) => ui.el("tr", { "data-cassette": cassette },
        ui.el("td", { text: cassette }),
        ui.el("td", { text: asked.has(cassette) ? ui.text(asked.get(cassette).notes) + (asked.get(cassette).value
          ? " \u00d7 " + ui.text(asked.get(cassette).value) : "") : "0" }),
        ui.el("td", {}, entry("exited", cassette)),
        ui.el("td", {}, entry("rejected", cassette))));
      const book = service(ui, ui.t("service.resolve"), "resolve_dispense", { kind: "primary", confirm: true, draft: "unknown",
        fields: () => ({ request_id: id, exited: Object.assign({}, mine.exited), rejected: Object.assign({}, mine.rejected) }) });
      const summary = ui.el("p", { "data-field": "resolve_summary" });
      const block = ui.el("div", { class: "unknown-dispense", "data-request": id },
        ui.facts([
          [ui.t("service.request_id"), id, "unknown_request", "mono"],
          [ui.t("service.transaction"), item.test ? ui.t("service.test_dispense") : ui.text(item.tx_id, "-"), "unknown_tx", "mono"],
          [ui.t("service.value"), ui.text(item.value, "-"), "unknown_value"],
          [ui.t("screen.date"), ui.text(item.at, "-"), "unknown_at"],
          [ui.t("service.known_exited"), per(item.known_exited), "unknown_known"],
        ]),
        table(ui, "unknown_counts", [ui.t("service.cassette"), ui.t("service.asked"), ui.t("service.paid_out"),
          ui.t("service.rejected")], rows),
        summary,
        ui.el("div", { class: "buttons" }, book));
      redraws.push(() => {
        for (const b of block.querySelectorAll("button[data-entry]")) {
          const kind = b.dataset.entry; const cassette = b.dataset.cassette;
          const value = mine[kind][cassette];
          b.textContent = value === undefined ? "\u2013" : value;
          b.setAttribute("aria-pressed", active && active[0] === id && active[1] === kind && active[2] === cassette ? "true" : "false");
        }
        const ready = cassettes.every((x) => mine.exited[x] !== undefined && mine.exited[x] !== "");
        book.disabled = !ready;
        const shown = (o) => cassettes.map((x) => x + ": " + (o[x] || "0")).join(", ");
        summary.textContent = ready ? ui.t("service.resolve_summary", { request: id, paid: shown(mine.exited),
          rejected: shown(mine.rejected) }) : "\u00a0";
      });
      return block;
    });
    const press = (key) => {
      if (!active) return;
      const [id, kind, cassette] = active;
      const box = counts.get(id)[kind];
      const now = box[cassette] === undefined ? "" : box[cassette];
      const next = key === "clear" ? "" : key === "back" ? now.slice(0, -1) : now.length < 5 ? now + key : now;
      if (next === "") delete box[cassette]; else box[cassette] = next;
      redraw();
    };
    redraw();
    return [head, ui.el("p", { class: "muted", text: ui.t("service.unknown_help") }),
      ui.el("div", { "data-field": "unknown_dispenses" }, ...blocks), digitPad(ui, press, ui.t("service.paid_out"))];
  }

  // Uploads still queued for a CAS this kiosk was paired with before (atm/cas/link.py):
  // on the Status page and the Pairing page, so a technician sees them wherever they look.
  function previousServers(d, ui) {
    const pairing = d.pairing && typeof d.pairing === "object" ? d.pairing : {};
    const previous = Array.isArray(pairing.previous) ? pairing.previous : [];
    return previous.map((p) => ui.el("p", { class: "notice", "data-field": "pairing_previous",
      text: ui.t("service.pairing_previous", { count: ui.text(p.queued_uploads, "0"), url: ui.text(p.cas_url, "-"),
        path: ui.text(p.kept_in, "-") }) }));
  }

  const pages = {
    status(d, ui) {
      const devices = Array.isArray(d.devices) ? d.devices : [];
      const cas = d.cas && typeof d.cas === "object" ? d.cas : {};
      const journal = d.journal && typeof d.journal === "object" ? d.journal : {};
      const reconciliation = Array.isArray(journal.reconciliation) ? journal.reconciliation : [];
      return [
        d.out_of_service_reason ? ui.el("p", { class: "error", "data-field": "out_of_service_reason",
          text: ui.text(d.out_of_service_reason) }) : null,
        d.buy_paused_reason ? ui.el("p", { class: "notice", "data-field": "buy_paused_reason",
          text: ui.text(d.buy_paused_reason) }) : null,
        ui.el("h2", { text: ui.t("service.devices") }),
        devices.length ? table(ui, "devices",
          [ui.t("service.device"), ui.t("service.model"), ui.t("service.firmware"), ui.t("service.serial"),
            ui.t("service.state"), ui.t("service.last_error")],
          devices.map((dev) => ui.el("tr", { "data-device": ui.text(dev.name) },
            ui.el("td", { text: ui.text(dev.name) + " (" + ui.text(dev.kind) + ")" }),
            ui.el("td", { text: ui.text(dev.model, "-") }),
            ui.el("td", { text: ui.text(dev.firmware, "-") }),
            ui.el("td", { text: ui.text(dev.serial, "-") }),
            ui.el("td", { class: statusClass(dev.state), "data-field": "state", text: ui.text(dev.state, "-") }),
            ui.el("td", { text: ui.text(dev.last_error || dev.detail, "-") }))))
          : ui.el("p", { class: "muted", text: ui.t("service.nothing") }),
        ui.el("h2", { text: ui.t("service.cas_link") }),
        ui.facts([
          [ui.t("service.cas_pin"), ui.text(cas.pin, "-"), "cas_pin", "mono"],
          [ui.t("service.bundle_version"), ui.text(cas.bundle_version, "-"), "bundle_version"],
          [ui.t("service.last_contact"), ui.text(cas.last_contact, ui.t("service.never")), "last_contact"],
          [ui.t("service.queued_uploads"), ui.text(cas.queued_uploads, "0"), "queued_uploads"],
        ]),
        ...previousServers(d, ui),
        ui.el("p", { "data-field": "journal_open", text: ui.t("service.open_transactions", { count: ui.text(journal.open, "0") }) }),
        reconciliation.length ? ui.el("h2", { text: ui.t("service.reconciliation") }) : null,
        reconciliation.length ? ui.el("ul", { "data-field": "reconciliation" },
          ...reconciliation.map((item) => ui.el("li", {}, ui.el("strong", { class: "mono", text: ui.text(item.id) + ": " }),
            ui.text(item.summary)))) : null,
      ];
    },

    alerts(d, ui) {
      const groups = Array.isArray(d.alert_groups) ? d.alert_groups : [];
      if (!groups.length) return [ui.el("p", { class: "ok", "data-field": "alerts", text: ui.t("service.no_alerts") })];
      return [
        ui.el("p", { class: "muted", text: ui.t("service.alerts_count", { count: ui.text(d.alerts_total, "0") }) }),
        ui.el("ul", { class: "alerts", "data-field": "alerts" }, ...groups.map((g) =>
          ui.el("li", { class: "severity-" + ui.text(g.severity), "data-kind": ui.text(g.kind) },
            ui.el("span", { class: "badge", text: ui.t("service.severity_" + (["critical", "warning", "info"].includes(g.severity) ? g.severity : "warning")) }),
            ui.el("strong", { text: " " + ui.text(g.kind) + " " }),
            ui.el("span", { class: "count", text: ui.t("service.times", { count: ui.text(g.count) }) }),
            ui.el("div", { class: "muted", text: ui.text(g.last) }),
            ...(Array.isArray(g.recent) ? g.recent : []).map((line) => ui.el("div", { class: "line", text: ui.text(line) }))))),
      ];
    },

    cash(d, ui) {
      const cash = d.cash && typeof d.cash === "object" ? d.cash : {};
      const notes = Array.isArray(cash.notes) ? cash.notes : [];
      const history = Array.isArray(cash.collections) ? cash.collections : [];
      const form = draft("cash", () => ({ counted: "" }));
      const shown = ui.el("div", { class: "pin-display", "data-field": "counted" });
      const collect = service(ui, ui.t("service.collect"), "collect_cash",
        { kind: "primary", confirm: true, draft: "cash", fields: () => ({ counted_minor: form.counted }) });
      const redraw = () => {
        shown.textContent = form.counted || "\u00a0";
        collect.disabled = form.counted.length === 0;
      };
      const press = (key) => {
        if (key === "clear") form.counted = "";
        else if (key === "back") form.counted = form.counted.slice(0, -1);
        else if (form.counted.length < 12) form.counted += key;
        redraw();
      };
      redraw();
      return [
        ui.el("h2", { text: ui.t("service.cashbox") }),
        table(ui, "cashbox", [ui.t("service.value"), ui.t("service.notes")],
          notes.map((n) => ui.el("tr", {}, ui.el("td", { text: ui.text(n.value) }), ui.el("td", { text: ui.text(n.count) })))),
        ui.facts([[ui.t("service.notes"), ui.text(cash.count, "0"), "cash_count"],
          [ui.t("service.value"), ui.text(cash.total), "cash_total"],
          [ui.t("service.state"), ui.text(cash.status), "cashbox_status"]]),
        ui.el("p", { text: ui.t("service.counted") }),
        shown,
        digitPad(ui, press, ui.t("service.counted")),
        ui.el("div", { class: "buttons" }, collect),
        ui.el("h2", { text: ui.t("service.collections") }),
        history.length ? table(ui, "collections", [ui.t("screen.date"), ui.t("service.notes"), ui.t("service.value"),
          ui.t("service.counted"), ui.t("service.difference")],
        history.map((c) => ui.el("tr", {}, ...[c.at, c.notes, c.expected, c.counted, c.difference]
          .map((v) => ui.el("td", { text: ui.text(v, "-") })))))
          : ui.el("p", { class: "muted", "data-field": "collections", text: ui.t("service.no_collections") }),
      ];
    },

    cassettes(d, ui) {
      if (!d.cassettes) return [ui.el("p", { class: "muted", "data-field": "cassettes", text: ui.t("service.cassettes_none") })];
      const list = (v) => (Array.isArray(v) ? v : []);
      const books = list(d.cassettes.books);
      const mismatches = list(d.cassettes.mismatches);
      const wrongNotes = list(d.cassettes.denomination_mismatches);
      const refillInfo = d.cassettes.refill && typeof d.cassettes.refill === "object" ? d.cassettes.refill : {};
      // the dispenser's cassettes (a cassette new to the books can be loaded too); else the books'
      const slots = list(refillInfo.cassettes).length ? list(refillInfo.cassettes) : books.map((row) => ({
        cassette: row.cassette, configured: row.denomination, configured_minor: row.denomination_minor,
        denomination_minor: row.denomination_minor, near_empty: row.near_empty }));
      const money = moneyFormat(refillInfo);
      const form = draft("cassettes", () => ({ slot: null, values: null, active: "count" }));
      let slot = slots.find((row) => ui.text(row.cassette) === form.slot) || slots[0] || null;
      const LIMITS = { count: 5, denomination: 12, near_empty: 5 };
      const fromSlot = () => {
        form.slot = slot ? ui.text(slot.cassette) : null;
        values.denomination = slot && slot.denomination_minor != null ? String(slot.denomination_minor) : "";
        values.near_empty = slot && slot.near_empty != null ? String(slot.near_empty) : "";
      };
      const fresh = form.values === null || form.slot !== (slot ? ui.text(slot.cassette) : null);
      if (fresh) form.values = { count: "", denomination: "", near_empty: "" };
      const values = form.values;
      if (fresh) fromSlot();
      const chosen = () => (slot ? ui.text(slot.cassette) : "");
      const refill = service(ui, ui.t("service.refill"), "refill_cassette",
        { kind: "primary", confirm: true, draft: "cassettes", fields: () => ({ cassette: chosen(), count: values.count,
          denomination: values.denomination, near_empty: values.near_empty }) });
      const reject = service(ui, ui.t("service.reject_bin_record"), "count_reject_bin",
        { confirm: true, draft: "cassettes", fields: () => ({ counted: values.count }) });
      const choices = ui.el("div", { class: "buttons grid", "data-field": "cassette_choice" });
      const notesOffered = ui.el("div", { class: "buttons grid", "data-field": "denomination_choice" });
      const labels = { count: ui.t("service.notes_entered"), denomination: ui.t("service.note_value"),
        near_empty: ui.t("service.near_empty") };
      const entries = ui.el("div", { class: "buttons grid", "data-field": "refill_entries" });
      for (const name of ["count", "denomination", "near_empty"]) {
        entries.append(ui.el("button", { type: "button", class: "btn", "data-entry": name,
          onclick: () => { form.active = name; redraw(); } }));
      }
      const summary = ui.el("p", { "data-field": "refill_summary" });
      const warning = ui.el("p", { class: "error", "data-field": "refill_mismatch", role: "alert" });
      const redraw = () => {
        for (const b of entries.children) {
          const name = b.dataset.entry;
          b.textContent = labels[name] + ": " + (values[name] || "\u2013");
          b.setAttribute("aria-pressed", name === form.active ? "true" : "false");
        }
        const complete = values.count.length > 0 && values.denomination.length > 0 && values.near_empty.length > 0;
        refill.disabled = !complete || !slot;
        reject.disabled = values.count.length === 0;
        for (const b of choices.children) b.setAttribute("aria-pressed", b.dataset.cassette === chosen() ? "true" : "false");
        for (const b of notesOffered.children) {
          b.setAttribute("aria-pressed", b.dataset.denomination === values.denomination ? "true" : "false");
        }
        summary.textContent = complete && slot ? ui.t("service.refill_summary", { id: chosen(), count: values.count,
          value: money(values.denomination), low: values.near_empty }) : "\u00a0";
        const differs = slot && slot.configured_minor != null && values.denomination !== ""
          && values.denomination !== String(slot.configured_minor);
        warning.textContent = differs ? ui.t("service.refill_mismatch", { id: chosen(),
          configured: ui.text(slot.configured), value: money(values.denomination) }) : "";
        warning.hidden = !differs;
      };
      for (const row of slots) {
        const id = ui.text(row.cassette);
        choices.append(ui.el("button", { type: "button", class: "btn", "data-cassette": id,
          text: ui.t("service.cassette_named", { id: id, value: ui.text(row.configured) }),
          onclick: () => { slot = row; fromSlot(); redraw(); } }));
      }
      for (const note of list(refillInfo.denominations)) {
        const minor = ui.text(note.minor);
        notesOffered.append(ui.el("button", { type: "button", class: "btn", "data-denomination": minor,
          text: ui.text(note.text), onclick: () => { values.denomination = minor; redraw(); } }));
      }
      const press = (key) => {
        const field = form.active;
        if (key === "clear") values[field] = "";
        else if (key === "back") values[field] = values[field].slice(0, -1);
        else if (values[field].length < LIMITS[field]) values[field] += key;
        redraw();
      };
      redraw();
      return [
        ui.el("h2", { text: ui.t("service.cassette_books") }),
        books.length ? table(ui, "cassette_books",
          [ui.t("service.cassette"), ui.t("service.denomination"), ui.t("service.initial"), ui.t("service.dispensed"),
            ui.t("service.rejected"), ui.t("service.in_cassette"), ui.t("service.near_empty"), ui.t("service.state")],
          books.map((row) => ui.el("tr", { "data-cassette": ui.text(row.cassette) },
            ...[row.cassette, row.denomination, row.initial, row.dispensed, row.rejected, row.count, row.near_empty]
              .map((v) => ui.el("td", { text: ui.text(v, "-") })),
            ui.el("td", { class: statusClass(row.status), text: ui.text(row.status, "-") }))))
          : ui.el("p", { class: "muted", "data-field": "cassette_books", text: ui.t("service.nothing") }),
        mismatches.length || wrongNotes.length ? ui.el("ul", { class: "error", "data-field": "cassette_mismatches" },
          ...wrongNotes.map((m) => ui.el("li", { "data-cassette": ui.text(m.cassette),
            text: ui.t("service.denomination_mismatch", { id: ui.text(m.cassette), books: ui.text(m.books),
              configured: ui.text(m.configured) }) })),
          ...mismatches.map((m) => ui.el("li", { text: ui.text(m) }))) : null,
        ui.facts([[ui.t("service.reject_bin"), ui.text(d.cassettes.reject_bin, "0"), "reject_bin"]]),
        ui.el("h2", { text: ui.t("service.refill_title") }),
        ui.el("p", { class: "muted", text: ui.t("service.cassettes_status") }),
        choices,
        notesOffered.children.length ? ui.el("p", { text: ui.t("service.note_value_choice") }) : null,
        notesOffered.children.length ? notesOffered : null,
        entries,
        digitPad(ui, press, ui.t("service.notes_entered")),
        summary,
        warning,
        ui.el("div", { class: "buttons" }, refill, reject),
        ...unknownDispenses(d.cassettes, ui),
      ];
    },

    tests(d, ui) {
      const tests = d.tests && typeof d.tests === "object" ? d.tests : {};
      const sensors = tests.sensors && typeof tests.sensors === "object" ? tests.sensors : {};
      const noteTest = tests.note_test && typeof tests.note_test === "object" ? tests.note_test : {};
      const answer = tests.test_dispense && typeof tests.test_dispense === "object" ? tests.test_dispense : null;
      const scan = tests.scan_test && typeof tests.scan_test === "object" ? tests.scan_test : {};
      if (scan.running && !scanWasRunning) scrollToPreview = true;
      scanWasRunning = scan.running === true;
      const books = d.cassettes && Array.isArray(d.cassettes.books) ? d.cassettes.books : [];
      const counts = (notes) => Object.entries(notes && typeof notes === "object" ? notes : {})
        .map(([id, n]) => ui.text(id) + ": " + ui.text(n)).join(", ") || "0";
      return [
        ui.el("h2", { text: ui.t("service.test_accept") }),
        noteTest.active ? ui.el("p", { class: "notice", "data-field": "note_test_waiting", text: ui.t("service.note_test_waiting") }) : null,
        ui.facts([[ui.t("service.note_read"), ui.text(noteTest.read, "-"), "note_read", "mono"]]),
        ui.el("div", { class: "buttons" }, noteTest.active
          ? service(ui, ui.t("service.note_test_stop"), "note_test", { fields: () => ({ stop: true }) })
          : service(ui, ui.t("service.test_accept"), "note_test", { kind: "primary" })),
        books.length ? ui.el("h2", { text: ui.t("service.test_dispense") }) : null,
        books.length ? ui.el("div", { class: "buttons grid", "data-field": "test_dispense" }, ...books.map((row) =>
          service(ui, ui.t("service.cassette_named", { id: ui.text(row.cassette), value: ui.text(row.denomination) }),
            "test_dispense", { confirm: true, fields: () => ({ cassette: ui.text(row.cassette) }) }))) : null,
        answer ? ui.facts([
          [ui.t("service.cassette"), ui.text(answer.cassette, "-"), "test_dispense_cassette"],
          [ui.t("service.test_result"), answer.done ? ui.text(answer.error || answer.completion, "-")
            : ui.t("service.test_waiting"), "test_dispense_result"],
          [ui.t("service.rejected"), counts(answer.rejected), "test_dispense_rejected"],
          [ui.t("service.dispensed"), counts(answer.exited), "test_dispense_exited"],
        ]) : null,
        ui.el("h2", { text: ui.t("service.tab_tests") }),
        ui.el("div", { class: "buttons grid" },
          service(ui, ui.t("service.test_print"), "print_test"),
          scan.running
            ? service(ui, ui.t("service.scan_test_stop"), "scan_test", { kind: "primary", fields: () => ({ stop: true }) })
            : service(ui, ui.t("service.test_scan"), "scan_test"),
          service(ui, ui.t("service.test_lights"), "test_lights")),
        scan.running ? ui.el("p", { class: "notice", "data-field": "scan_running", text: ui.t("service.scan_running") }) : null,
        scan.running ? scanPreview(ui, scan) : null,
        ui.facts([[ui.t("service.scan_result"), ui.text(tests.last_scan, "-"), "last_scan", "mono"]]),
        ui.el("h2", { text: ui.t("service.sensors") }),
        table(ui, "sensors", [ui.t("service.device"), ui.t("service.state")],
          Object.entries(sensors).map(([name, on]) => ui.el("tr", {}, ui.el("td", { text: name }),
            ui.el("td", { text: on ? "1" : "0" })))),
      ];
    },

    pairing(d, ui) {
      const cas = d.cas && typeof d.cas === "object" ? d.cas : {};
      const pairing = d.pairing && typeof d.pairing === "object" ? d.pairing : {};
      const fresh = pairing.paired_with && typeof pairing.paired_with === "object" ? pairing.paired_with : null;
      // The link in use now: after a pairing here that is the new server, with no restart.
      const inUse = pairing.in_use && typeof pairing.in_use === "object" ? pairing.in_use : null;
      const pins = inUse && Array.isArray(inUse.cas_pins) ? inUse.cas_pins.join(" ") : null;
      const result = d.last_result && typeof d.last_result === "object" && d.last_result.do === "pair_scan"
        ? d.last_result : null;
      return [
        ui.facts([
          [ui.t("service.pairing_state"), ui.text(inUse ? inUse.cas_url : cas.url, "-"), "pairing_url", "mono"],
          [ui.t("service.cas_pin"), ui.text(pins || (fresh ? fresh.cas_pin : null), "-"), "pairing_pin", "mono"],
          [ui.t("service.pairing_operator"), ui.text(inUse ? inUse.operator_key_id : null, "-"), "pairing_operator", "mono"],
          [ui.t("service.bundle_version"), ui.text(cas.bundle_version, "-"), "pairing_version"],
        ]),
        pairing.waiting_for_code ? ui.el("p", { class: "notice", "data-field": "pairing_waiting",
          text: ui.t("service.pairing_waiting") }) : null,
        fresh ? ui.el("p", { class: "notice", "data-field": "pairing_in_use",
          text: ui.t("service.pairing_restart", { url: ui.text(fresh.cas_url, "-") }) }) : null,
        fresh && pairing.settings_in_force === false ? ui.el("p", { class: "notice", "data-field": "pairing_settings",
          text: ui.t("service.pairing_waiting_settings") }) : null,
        result && result.ok === false ? ui.el("p", { class: "error", role: "alert", "data-field": "pairing_failed",
          text: ui.t("service.pairing_failed", { url: ui.text(inUse ? inUse.cas_url : cas.url, "-") }) }) : null,
        result && result.ok === false ? ui.el("p", { class: "mono", "data-field": "pairing_error",
          text: ui.text(result.text, "") }) : null,
        ...previousServers(d, ui),
        ui.el("div", { class: "buttons" },
          service(ui, ui.t("service.pairing_scan"), "pair_scan", { kind: "primary", disabled: pairing.busy === true })),
      ];
    },

    logs(d, ui) {
      const lines = Array.isArray(d.logs) ? d.logs : [];
      const form = draft("logs", () => ({ path: "/media/usb" }));
      const input = ui.el("input", { type: "text", class: "field", value: form.path, "aria-label": ui.t("service.export_path"),
        "data-field": "export_path" });
      input.addEventListener("input", () => { form.path = input.value; });
      return [
        ui.el("h2", { text: ui.t("service.logs_lines") }),
        ui.el("pre", { class: "log mono", "data-field": "logs", text: lines.join("\n") || "-" }),
        ui.el("label", { class: "muted", text: ui.t("service.export_path") }),
        input,
        ui.el("div", { class: "buttons" },
          service(ui, ui.t("service.logs_export"), "export_logs", { fields: () => ({ path: form.path }) }),
          service(ui, ui.t("service.logs_print"), "print_logs")),
      ];
    },

    activation(d, ui) {
      const a = d.activation && typeof d.activation === "object" ? d.activation : {};
      const review = a.review && typeof a.review === "object" ? a.review : {};
      return [
        ui.el("p", { class: a.active ? "ok" : "error", "data-field": "kiosk_active",
          text: ui.t(a.active ? "service.active" : "service.inactive") + (a.deactivated_by ? " (" + ui.text(a.deactivated_by) + ")" : "") }),
        a.needs_signature ? ui.el("p", { class: "notice", "data-field": "needs_signature", text: ui.t("service.needs_signature") }) : null,
        ui.el("h2", { text: ui.t("service.activation_review") }),
        ui.facts(Object.entries(review).map(([k, v]) => [k.replace(/_/g, " "), ui.text(v, "-"), "review_" + k, "mono"])),
        ui.el("div", { class: "buttons" },
          a.active ? service(ui, ui.t("service.deactivate"), "deactivate", { kind: "danger", confirm: true })
            : service(ui, ui.t("service.activate"), "activate", { kind: "primary", confirm: true, disabled: a.needs_signature === true })),
      ];
    },
  };

  screens.register("maintenance", (d, ui) => {
    const tabs = ui.el("nav", { class: "tabs", role: "tablist" });
    const body = ui.el("section", { class: "page", "data-page": page });
    const show = (name) => {
      page = name;
      body.dataset.page = name;
      for (const tab of tabs.children) tab.setAttribute("aria-selected", tab.dataset.page === name ? "true" : "false");
      body.replaceChildren(...pages[name](d, ui).filter((n) => n));
    };
    for (const name of PAGES) {
      tabs.append(ui.el("button", { type: "button", class: "btn tab", role: "tab", "data-page": name,
        text: ui.t("service.tab_" + name), onclick: () => show(name) }));
    }
    show(PAGES.includes(page) ? page : "status");
    redrawPage = () => { if (body.isConnected) show(page); };
    const result = d.last_result && typeof d.last_result === "object" ? d.last_result : null;
    return [
      ui.el("header", { class: "service-head" },
        ui.el("h1", { text: ui.t("service.title") }),
        ui.el("p", { class: d.active === false ? "error" : "muted", "data-field": "kiosk",
          text: ui.t("service.kiosk", { id: ui.text(d.kiosk_id) }) + " \u00b7 " + ui.t(d.active === false ? "service.inactive" : "service.active") }),
        service(ui, ui.t("service.exit"), "exit", { kind: "primary" })),
      tabs,
      result ? ui.el("p", { class: result.ok ? "ok" : "error", "data-field": "last_result",
        text: result.ok ? ui.t("service.done") : ui.t("service.failed", { error: ui.text(result.text) }) }) : null,
      body,
      ui.countdown(d.timeout_s),
    ];
  });
})();
