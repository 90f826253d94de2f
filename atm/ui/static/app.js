// Customer screens of the buy, the idle screen and out of service, registered into the
// page's screen registry (kiosk.js). Every word comes from the language files through
// ui.t / ui.say; values (amounts, addresses) are shown as text, never as HTML, because
// some of them came from a scanned code.
"use strict";

(function () {
  const screens = window.kioskScreens;
  const NETWORKS = ["main", "test", "regtest", "signet"];

  function operatorLine(d, ui) {
    return ui.operatorLine(d);
  }

  // Amounts arrive written in the screen's language ("1.234,50 EUR"); the page shows them
  // as they are and never parses them. A zero fixed fee has no digit but 0 in any language.
  function fixedFee(d) {
    return d.fixed_fee && /[1-9]/.test(String(d.fixed_fee)) ? d.fixed_fee : null;
  }
  function feeTerms(d, ui) {       // the fee terms as a line of their own (screen.fee_terms)
    const fixed = fixedFee(d);
    return fixed ? ui.t("screen.fee_terms_fixed", { percent: d.fee_percent, fixed })
      : ui.t("screen.fee_terms", { percent: d.fee_percent });
  }
  function feeRule(d, ui) {        // the same terms after the label screen.fee_named gives them
    const fixed = fixedFee(d);
    return fixed ? ui.t("screen.fee_rule_fixed", { percent: d.fee_percent, fixed })
      : ui.t("screen.fee_rule", { percent: d.fee_percent });
  }

  // Price, fee terms, limits, notes: what a customer must know before any money moves.
  function offer(d, ui) {
    return ui.el("section", { class: "offer", "data-field": "offer" },
      ui.el("p", { class: "label", text: ui.t("screen.price") }),
      ui.el("p", { class: "price", "data-field": "price_per_btc",
        text: d.price_per_btc ? ui.text(d.price_per_btc) : ui.t("screen.price_unavailable") }),
      ui.el("p", { "data-field": "fee_terms", text: feeTerms(d, ui) }),
      d.min && d.max ? ui.el("p", { "data-field": "limits", text: ui.t("screen.limits", { min: d.min, max: d.max }) }) : null,
      Array.isArray(d.notes) && d.notes.length
        ? ui.el("p", { "data-field": "notes", text: ui.t("screen.notes_accepted", { notes: d.notes.join(", ") }) }) : null,
      d.receipt_available === false
        ? ui.el("p", { class: "notice", "data-field": "receipt_unavailable", text: ui.t("screen.receipt_unavailable") }) : null);
  }

  function languageChoice(d, ui) {
    const choices = Array.isArray(d.languages) ? d.languages : [];
    if (choices.length < 2) return null;
    const row = ui.el("nav", { class: "languages", "aria-label": ui.t("screen.language"), "data-field": "languages" });
    for (const choice of choices) {
      if (!choice || typeof choice.code !== "string") continue;
      const button = ui.actionButton(ui.text(choice.name, choice.code), "set_language",
        { kind: "lang" + (choice.code === d.language ? " current" : ""), fields: () => ({ language: choice.code }) });
      button.setAttribute("lang", choice.code);
      button.dataset.language = choice.code;
      if (choice.code === d.language) button.setAttribute("aria-current", "true");
      row.append(button);
    }
    return row;
  }

  function message(d, ui) {
    // Always present, so a message appearing or going never moves the rest of the screen.
    const words = ui.say(d.message);
    const returned = d.message && typeof d.message.key === "string" && d.message.key !== "message.note_received";
    return ui.el("p", { class: "message " + (words ? (returned ? "notice" : "good") : "empty"),
      "data-field": "message", role: "status", text: words || "\u00a0" });
  }

  screens.register("booting", (d, ui) => [ui.el("section", { class: "centered" },
    ui.el("h1", { text: ui.t("screen.starting") }),
    ui.el("div", { class: "spinner", "aria-hidden": "true" }),
    ui.el("p", { class: "muted", text: ui.t("screen.checking_devices") }))]);

  screens.register("idle", (d, ui) => {
    const buttons = ui.el("div", { class: "buttons" },
      ui.actionButton(ui.t("screen.buy"), "start_buy", { kind: "primary", disabled: d.buy_enabled === false }));
    if (d.sell_enabled === true) buttons.append(ui.actionButton(ui.t("screen.sell"), "start_sell", { kind: "primary" }));
    if (d.redeem_enabled === true) buttons.append(ui.actionButton(ui.t("sell_screen.redeem"), "start_redeem"));
    return [
      languageChoice(d, ui),
      ui.el("section", { class: "centered" },
        ui.el("h1", { text: ui.t("screen.idle_title") }),
        offer(d, ui),
        d.buy_enabled === false ? ui.el("p", { class: "notice", "data-field": "notice",
          text: ui.say(d.notice) || ui.t("screen.buy_unavailable") }) : null),
      buttons,
      operatorLine(d, ui),
    ];
  });

  screens.register("scan_address", (d, ui) => [
    languageChoice(d, ui),
    ui.el("section", { class: "centered" },
      ui.el("h1", { text: ui.t("screen.scan_title") }),
      ui.el("p", { class: "muted", "data-field": "network",
        text: ui.t("screen.scan_hint", { network: ui.t("screen.network_" + (NETWORKS.includes(d.network) ? d.network : "main")) }) }),
      ui.el("p", { class: "error" + (d.error ? "" : " empty"), "data-field": "error", role: "alert",
        text: ui.say(d.error) || "\u00a0" }),
      offer(d, ui)),
    ui.countdown(d.timeout_s),
    ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("screen.cancel"), "cancel")),
    operatorLine(d, ui),
  ]);

  screens.register("insert_cash", (d, ui) => {
    const inserted = typeof d.inserted_minor === "number" && d.inserted_minor > 0;
    const buttons = ui.el("div", { class: "buttons" });
    // Once a note is credited the only way out is to finish: the kiosk never keeps
    // cash without sending coins, so "Cancel" must not suggest otherwise.
    if (!inserted) buttons.append(ui.actionButton(ui.t("screen.cancel"), "cancel"));
    buttons.append(ui.actionButton(ui.t("screen.finish"), "finish_cash", { kind: "primary", disabled: d.can_finish !== true }));
    const notesIn = Array.isArray(d.notes_in) ? d.notes_in : [];
    return [
      ui.el("h1", { text: ui.t(inserted ? "screen.insert_more" : "screen.insert_title") }),
      ui.el("section", { class: "amounts" },
        ui.el("div", { class: "amount" },
          ui.el("p", { class: "label", text: ui.t("screen.inserted") }),
          ui.el("p", { class: "big", "data-field": "inserted", text: ui.text(d.inserted, "0") }),
          ui.el("p", { class: "muted notes-in", "data-field": "notes_in", text: notesIn.join(" + ") || "\u00a0" })),
        ui.el("div", { class: "amount" },
          ui.el("p", { class: "label", "data-field": "fee_named", text: ui.t("screen.you_get", { fee: ui.text(d.fee, "0") }) }),
          ui.el("p", { class: "big", "data-field": "btc", text: ui.text(d.btc, "0 BTC") }),
          ui.el("p", { class: "muted", "data-field": "sats", text: ui.t("screen.sats", { sats: ui.text(d.sats_shown, "0") }) }))),
      message(d, ui),
      ui.el("p", { class: "muted", "data-field": "fee_terms", text: feeTerms(d, ui) }),
      ui.facts([
        [ui.t("screen.to"), ui.text(d.address), "address", "mono"],
        [ui.t("screen.room"), ui.text(d.room), "room"],
      ]),
      ui.el("p", { class: "muted", "data-field": "below_min",
        text: !d.can_finish && inserted ? ui.t("screen.below_min", { min: d.min }) : "\u00a0" }),
      ui.el("p", { class: d.receipt_available ? "muted" : "notice", "data-field": "receipt_available",
        text: ui.t(d.receipt_available ? "screen.receipt_will_print" : "screen.receipt_unavailable") }),
      ui.countdown(d.timeout_s),
      buttons,
      operatorLine(d, ui),
    ];
  });

  screens.register("confirm", (d, ui) => [
    ui.el("h1", { text: ui.t("screen.confirm_title") }),
    ui.el("section", { class: "amounts" },
      ui.el("div", { class: "amount" },
        ui.el("p", { class: "label", text: ui.t("screen.you_receive") }),
        ui.el("p", { class: "big", "data-field": "btc", text: ui.text(d.btc, "0 BTC") }),
        ui.el("p", { class: "muted", "data-field": "sats", text: ui.t("screen.sats", { sats: ui.text(d.sats_shown, "0") }) }))),
    ui.facts([
      [ui.t("screen.to"), ui.text(d.address), "address", "mono"],
      [ui.t("screen.cash"), ui.text(d.cash), "cash"],
      [ui.t("screen.fee_named", { terms: feeRule(d, ui) }), ui.text(d.fee), "fee"],
      [ui.t("screen.rate"), ui.text(d.rate), "rate"],
    ]),
    d.fixed_fee_waived ? ui.el("p", { class: "muted", "data-field": "fixed_fee_waived", text: ui.t("screen.fixed_fee_waived") }) : null,
    message(d, ui),
    ui.countdown(d.timeout_s),
    ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("screen.confirm"), "confirm", { kind: "primary" })),
    operatorLine(d, ui),
  ]);

  screens.register("sending", (d, ui) => [
    ui.el("section", { class: "centered" },
      ui.el("h1", { text: ui.t("screen.sending_title") }),
      ui.el("div", { class: "spinner", "aria-hidden": "true" }),
      ui.el("p", { text: ui.t("screen.sending_hint") }),
      d.message ? message(d, ui) : null,
      ui.el("p", { class: "mono muted", "data-field": "address", text: ui.text(d.address) })),
    ui.countdown(d.timeout_s),
    operatorLine(d, ui),
  ]);

  screens.register("receipt", (d, ui) => {
    const qr = typeof d.tx_qr === "string" && d.tx_qr.startsWith("data:image/svg+xml")
      ? ui.el("figure", { class: "qr" },
        ui.el("img", { src: d.tx_qr, alt: ui.t("screen.qr_label"), "data-field": "tx_qr" }),
        ui.el("figcaption", { class: "mono", text: ui.text(d.tx_id) }))
      : null;
    return [
      ui.el("h1", { text: ui.t("screen.receipt_title") }),
      ui.el("div", { class: "receipt-body" },
        ui.el("div", {},
          ui.facts([
            [ui.t("screen.cash"), ui.text(d.cash), "cash"],
            [ui.t("screen.sent"), ui.text(d.btc), "btc"],
            [ui.t("screen.to"), ui.text(d.address), "address", "mono"],
            [ui.t("screen.transaction"), ui.text(d.txid, ui.t("screen.txid_pending")), "txid", "mono"],
            [ui.t("screen.date"), ui.text(d.date), "date"],
          ]),
          ui.el("p", { class: d.printed ? "good" : "notice", "data-field": "printed",
            text: ui.t(d.printed ? "screen.take_receipt" : "screen.no_receipt") }),
          d.message ? message(d, ui) : null),
        qr),
      ui.countdown(d.timeout_s),
      ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("screen.done"), "done", { kind: "primary" })),
      operatorLine(d, ui),
    ];
  });

  screens.register("out_of_service", (d, ui) => {
    const op = d.operator && typeof d.operator === "object" ? d.operator : {};
    return [ui.el("section", { class: "centered" },
      ui.el("h1", { text: ui.t("screen.out_title") }),
      ui.el("p", { class: "lead", "data-field": "out_text", text: ui.t("screen.out_text") }),
      op.contact ? ui.el("p", { class: "lead", "data-field": "contact",
        text: ui.t("screen.out_contact", { name: ui.text(op.name), contact: op.contact }) }) : null)];
  });
})();
