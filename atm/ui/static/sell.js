// Cash-out screens (sell and redeem), registered into the customer page's screens by
// app.js (window.kioskExtraScreens). Texts come with the screen data from the language
// files (d.labels, atm/locale/*.toml [sell_screen]) and the flows' messages; every value
// is shown as text, and the QR codes are images the kiosk drew itself.
"use strict";
window.kioskExtraScreens = function (ui) {
  const { el, text, actionButton, facts, countdown } = ui;
  const L = (d, key, fallback) => (d.labels && d.labels[key]) || fallback;

  function message(d) {
    return d.message ? el("p", { class: "notice", "data-field": "message", text: text(d.message) }) : null;
  }

  function error(d) {
    return d.error ? el("p", { class: "error", "data-field": "error", text: text(d.error) }) : null;
  }

  function waiting(title) {
    return [el("section", { class: "centered" }, el("h1", { text: title }),
      el("div", { class: "spinner", "aria-hidden": "true" }))];
  }

  return {
    sell_amount(d) {
      const amounts = el("div", { class: "buttons amounts", "data-field": "amounts" });
      for (const a of d.amounts || []) {
        amounts.append(actionButton(text(a.text), "choose_amount",
          { kind: "primary", fields: () => ({ minor: a.minor }) }));
      }
      for (const button of amounts.querySelectorAll("button")) button.dataset.minor = "";
      (d.amounts || []).forEach((a, i) => { amounts.children[i].dataset.minor = String(a.minor); });
      return [
        el("h1", { text: L(d, "choose", "How much cash do you want?") }),
        d.fee_percent ? el("p", { class: "muted", "data-field": "fee_percent",
          text: L(d, "fee", "Fee") + ": " + text(d.fee_percent) + " %" }) : null,
        error(d),
        amounts,
        countdown(d.timeout_s),
        el("div", { class: "buttons" }, actionButton(L(d, "cancel", "Cancel"), "cancel")),
      ];
    },

    sell_wait(d) {
      return waiting(L(d, "getting_address", "Getting your payment address…"));
    },

    sell_pay(d) {
      return [
        el("h1", { text: L(d, "send_exactly", "Send exactly this amount to this address") }),
        d.qr ? el("img", { class: "qr", src: d.qr, alt: text(d.uri), "data-field": "qr" }) : null,
        facts([
          [L(d, "you_send", "You send"), text(d.btc) + " BTC", "btc"],
          [L(d, "you_get", "You get"), text(d.cash), "cash"],
          [L(d, "fee", "Fee"), text(d.fee), "fee"],
          [L(d, "address", "Address"), text(d.address), "address", "mono"],
          [L(d, "time_left", "Time left"), text(Math.floor((d.seconds_left || 0) / 60)) + ":" +
            String((d.seconds_left || 0) % 60).padStart(2, "0"), "seconds_left"],
        ]),
        el("p", { class: "mono muted", "data-field": "uri", text: text(d.uri) }),
        d.status ? el("p", { class: "muted", "data-field": "status", text: text(d.status) }) : null,
        el("div", { class: "buttons" }, actionButton(L(d, "cancel", "Cancel"), "cancel")),
      ];
    },

    dispensing(d) {
      return waiting(L(d, "counting", "Counting your cash…"));
    },

    sell_receipt(d) {
      return [
        el("h1", { text: d.redeem_code ? L(d, "redeem_code", "Your redeem code") : L(d, "take_cash", "Please take your cash") }),
        facts([
          [L(d, "paid_out", "Paid out"), text(d.paid_out), "paid_out"],
          [L(d, "still_owed", "Still owed"), text(d.owed), "owed"],
        ]),
        d.redeem_qr ? el("img", { class: "qr", src: d.redeem_qr, alt: text(d.redeem_code), "data-field": "redeem_qr" }) : null,
        d.redeem_code ? el("p", { class: "mono", "data-field": "redeem_code", text: text(d.redeem_code) }) : null,
        message(d),
        el("div", { class: "buttons" }, actionButton(L(d, "done", "Done"), "done", { kind: "primary" })),
      ];
    },

    redeem_scan(d) {
      return [
        el("section", { class: "centered" },
          el("h1", { text: L(d, "scan_code", "Show your redeem code to the camera") }),
          countdown(d.timeout_s)),
        el("div", { class: "buttons" }, actionButton(L(d, "cancel", "Cancel"), "cancel")),
      ];
    },

    redeem_wait(d) {
      return waiting(L(d, "checking", "Checking your code…"));
    },

    redeem_receipt(d) {
      return [
        el("h1", { text: d.message ? L(d, "redeem", "Redeem a code") : L(d, "take_cash", "Please take your cash") }),
        d.paid_out ? facts([[L(d, "paid_out", "Paid out"), text(d.paid_out), "paid_out"]]) : null,
        message(d),
        el("div", { class: "buttons" }, actionButton(L(d, "done", "Done"), "done", { kind: "primary" })),
      ];
    },
  };
};
