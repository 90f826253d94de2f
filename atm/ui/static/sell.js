// Cash-out screens (sell and redeem). Every word comes from the language files
// (atm/locale/*.toml [sell_screen], [sell], [redeem]) through ui.t("sell_screen.key"); the
// flows' messages arrive as text in the screen's language (or as {key, values}); values are
// shown as text (amounts already in the screen's number format, with their unit), and the QR codes are images the kiosk drew itself. Registered into the
// page's screen registry (window.kioskScreens) where the page has one, else handed to
// app.js (window.kioskExtraScreens) with the labels the kiosk sends in d.labels.
"use strict";

(function () {
  function message(d, ui) {
    const words = typeof d.message === "string" ? d.message : (ui.say ? ui.say(d.message) : "");
    return words ? ui.el("p", { class: "notice", "data-field": "message", text: words }) : null;
  }

  function waiting(ui, key) {
    return [ui.el("section", { class: "centered" }, ui.el("h1", { text: ui.t(key) }),
      ui.el("div", { class: "spinner", "aria-hidden": "true" }))];
  }

  // Who runs this kiosk and how to reach them, as on the buy screens.
  function operator(d, ui) {
    return typeof ui.operatorLine === "function" ? ui.operatorLine(d) : null;
  }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds || 0));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  const renderers = {
    sell_amount(d, ui) {
      const amounts = ui.el("div", { class: "buttons amounts", "data-field": "amounts" });
      for (const a of d.amounts || []) {
        const button = ui.actionButton(ui.text(a.text), "choose_amount",
          { kind: "primary", fields: () => ({ minor: a.minor }) });
        button.dataset.minor = String(a.minor);
        amounts.append(button);
      }
      return [
        ui.el("h1", { text: ui.t("sell_screen.choose") }),
        d.fee_percent ? ui.el("p", { class: "muted", "data-field": "fee_percent",
          text: ui.t("sell_screen.fee") + ": " + ui.text(d.fee_percent) + " %" }) : null,
        d.error ? ui.el("p", { class: "error", "data-field": "error", text: ui.text(d.error) }) : null,
        amounts,
        ui.countdown(d.timeout_s),
        ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("sell_screen.cancel"), "cancel")),
        operator(d, ui),
      ];
    },

    sell_wait(d, ui) {
      return waiting(ui, "sell_screen.getting_address");
    },

    sell_pay(d, ui) {
      return [
        ui.el("h1", { text: ui.t("sell_screen.send_exactly") }),
        // the code beside the amounts in landscape, above them in portrait (style.css .pay)
        ui.el("section", { class: "pay" },
          ui.el("div", { class: "pay-code" },
            // the wallet's camera reads this from arm's length: as large as the screen allows
            d.qr ? ui.el("img", { class: "qr large", src: d.qr, alt: ui.text(d.uri), "data-field": "qr" }) : null,
            ui.el("p", { class: "mono muted caption", "data-field": "uri", text: ui.text(d.uri) })),
          ui.el("div", { class: "pay-terms" },
            ui.el("div", { class: "amount" },
              ui.el("p", { class: "label", text: ui.t("sell_screen.you_send") }),
              ui.el("p", { class: "big", "data-field": "btc", text: ui.text(d.btc) })),
            ui.facts([
              [ui.t("sell_screen.you_get"), ui.text(d.cash), "cash"],
              [ui.t("sell_screen.fee"), ui.text(d.fee), "fee"],
              [ui.t("sell_screen.address"), ui.text(d.address), "address", "mono"],
              [ui.t("sell_screen.time_left"), clock(d.seconds_left), "seconds_left"],
            ]),
            d.status ? ui.el("p", { class: "muted", "data-field": "status", text: ui.text(d.status) }) : null)),
        ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("sell_screen.cancel"), "cancel")),
        operator(d, ui),
      ];
    },

    dispensing(d, ui) {
      return waiting(ui, "sell_screen.counting");
    },

    sell_receipt(d, ui) {
      return [
        ui.el("h1", { text: ui.t(d.redeem_code ? "sell_screen.redeem_code" : "sell_screen.take_cash") }),
        ui.el("section", { class: "pay" },
          d.redeem_qr || d.redeem_code ? ui.el("div", { class: "pay-code" },
            d.redeem_qr ? ui.el("img", { class: "qr large", src: d.redeem_qr, alt: ui.text(d.redeem_code),
              "data-field": "redeem_qr" }) : null,
            d.redeem_code ? ui.el("p", { class: "mono caption", "data-field": "redeem_code",
              text: ui.text(d.redeem_code) }) : null) : null,
          ui.el("div", { class: "pay-terms" },
            ui.facts([
              [ui.t("sell_screen.paid_out"), ui.text(d.paid_out), "paid_out"],
              [ui.t("sell_screen.still_owed"), ui.text(d.owed), "owed"],
            ]),
            message(d, ui))),
        ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("sell_screen.done"), "done", { kind: "primary" })),
        operator(d, ui),
      ];
    },

    redeem_scan(d, ui) {
      return [
        ui.el("section", { class: "centered" }, ui.el("h1", { text: ui.t("sell_screen.scan_code") }),
          ui.countdown(d.timeout_s)),
        ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("sell_screen.cancel"), "cancel")),
        operator(d, ui),
      ];
    },

    redeem_wait(d, ui) {
      return waiting(ui, "sell_screen.checking");
    },

    redeem_receipt(d, ui) {
      return [
        ui.el("h1", { text: ui.t(d.message ? "sell_screen.redeem" : "sell_screen.take_cash") }),
        d.paid_out ? ui.facts([[ui.t("sell_screen.paid_out"), ui.text(d.paid_out), "paid_out"]]) : null,
        message(d, ui),
        ui.el("div", { class: "buttons" }, ui.actionButton(ui.t("sell_screen.done"), "done", { kind: "primary" })),
        operator(d, ui),
      ];
    },
  };

  if (window.kioskScreens && typeof window.kioskScreens.register === "function") {
    for (const [name, render] of Object.entries(renderers)) window.kioskScreens.register(name, render);
    return;
  }
  // app.js without a registry: it passes its helpers; words come from the labels the kiosk sends.
  window.kioskExtraScreens = function (helpers) {
    const wrapped = {};
    for (const [name, render] of Object.entries(renderers)) {
      wrapped[name] = (d) => render(d, Object.assign({}, helpers, {
        t: (key) => {
          const name = key.slice(key.indexOf(".") + 1);
          return (d.labels && typeof d.labels[name] === "string") ? d.labels[name] : key;
        },
      }));
    }
    return wrapped;
  };
})();
