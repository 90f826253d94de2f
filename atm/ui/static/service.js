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

  function service(ui, label, what, options) {
    return ui.actionButton(label, "service_action", Object.assign({ do: what }, options || {}));
  }

  function table(ui, field, headers, rows) {
    return ui.el("table", { class: "status", "data-field": field },
      ui.el("thead", {}, ui.el("tr", {}, ...headers.map((h) => ui.el("th", { text: h })))),
      ui.el("tbody", {}, ...rows));
  }

  function statusClass(value) {
    return typeof value === "string" && /^[A-Za-z_]+$/.test(value) ? "state-" + value : null;
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
      let counted = "";
      const shown = ui.el("div", { class: "pin-display", "data-field": "counted" });
      const collect = service(ui, ui.t("service.collect"), "collect_cash",
        { kind: "primary", confirm: true, fields: () => ({ counted_minor: counted }) });
      const redraw = () => {
        shown.textContent = counted || "\u00a0";
        collect.disabled = counted.length === 0;
      };
      const press = (key) => {
        if (key === "clear") counted = "";
        else if (key === "back") counted = counted.slice(0, -1);
        else if (counted.length < 12) counted += key;
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
      const books = Array.isArray(d.cassettes.books) ? d.cassettes.books : [];
      const mismatches = Array.isArray(d.cassettes.mismatches) ? d.cassettes.mismatches : [];
      let chosen = books.length ? ui.text(books[0].cassette) : "";
      let entered = "";
      const shown = ui.el("div", { class: "pin-display", "data-field": "notes_entered" });
      const refill = service(ui, ui.t("service.refill"), "refill_cassette",
        { kind: "primary", confirm: true, fields: () => ({ cassette: chosen, count: entered }) });
      const reject = service(ui, ui.t("service.reject_bin_record"), "count_reject_bin",
        { confirm: true, fields: () => ({ counted: entered }) });
      const choices = ui.el("div", { class: "buttons grid", "data-field": "cassette_choice" });
      const redraw = () => {
        shown.textContent = entered || "\u00a0";
        refill.disabled = entered.length === 0 || !chosen;
        reject.disabled = entered.length === 0;
        for (const b of choices.children) b.setAttribute("aria-pressed", b.dataset.cassette === chosen ? "true" : "false");
      };
      for (const row of books) {
        const id = ui.text(row.cassette);
        choices.append(ui.el("button", { type: "button", class: "btn", "data-cassette": id,
          text: ui.t("service.cassette_named", { id: id, value: ui.text(row.denomination) }),
          onclick: () => { chosen = id; redraw(); } }));
      }
      const press = (key) => {
        if (key === "clear") entered = "";
        else if (key === "back") entered = entered.slice(0, -1);
        else if (entered.length < 5) entered += key;
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
        mismatches.length ? ui.el("ul", { class: "error", "data-field": "cassette_mismatches" },
          ...mismatches.map((m) => ui.el("li", { text: ui.text(m) }))) : null,
        ui.facts([[ui.t("service.reject_bin"), ui.text(d.cassettes.reject_bin, "0"), "reject_bin"]]),
        ui.el("p", { class: "muted", text: ui.t("service.cassettes_status") }),
        choices,
        ui.el("p", { text: ui.t("service.notes_entered") }),
        shown,
        digitPad(ui, press, ui.t("service.notes_entered")),
        ui.el("div", { class: "buttons" }, refill, reject),
      ];
    },

    tests(d, ui) {
      const tests = d.tests && typeof d.tests === "object" ? d.tests : {};
      const sensors = tests.sensors && typeof tests.sensors === "object" ? tests.sensors : {};
      const noteTest = tests.note_test && typeof tests.note_test === "object" ? tests.note_test : {};
      const answer = tests.test_dispense && typeof tests.test_dispense === "object" ? tests.test_dispense : null;
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
          service(ui, ui.t("service.test_scan"), "scan_test"),
          service(ui, ui.t("service.test_lights"), "test_lights")),
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
      const previous = Array.isArray(pairing.previous) ? pairing.previous : [];
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
        ...previous.map((p) => ui.el("p", { class: "notice", "data-field": "pairing_previous",
          text: ui.t("service.pairing_previous", { count: ui.text(p.queued_uploads, "0"), url: ui.text(p.cas_url, "-"),
            path: ui.text(p.kept_in, "-") }) })),
        ui.el("div", { class: "buttons" },
          service(ui, ui.t("service.pairing_scan"), "pair_scan", { kind: "primary", disabled: pairing.busy === true })),
      ];
    },

    logs(d, ui) {
      const lines = Array.isArray(d.logs) ? d.logs : [];
      let path = "/media/usb";
      const input = ui.el("input", { type: "text", class: "field", value: path, "aria-label": ui.t("service.export_path"),
        "data-field": "export_path" });
      input.addEventListener("input", () => { path = input.value; });
      return [
        ui.el("h2", { text: ui.t("service.logs_lines") }),
        ui.el("pre", { class: "log mono", "data-field": "logs", text: lines.join("\n") || "-" }),
        ui.el("label", { class: "muted", text: ui.t("service.export_path") }),
        input,
        ui.el("div", { class: "buttons" },
          service(ui, ui.t("service.logs_export"), "export_logs", { fields: () => ({ path }) }),
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
