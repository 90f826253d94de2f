// Customer screen and service menu: draws whatever screen the kiosk pushes over
// /ws and sends taps back as actions. It holds no state that matters: the kiosk
// validates every action, and every value shown is text (never HTML), because
// addresses and messages can come from a scanned code.
"use strict";

(function () {
  const screenRoot = document.getElementById("screen");
  const connection = document.getElementById("connection");
  const toastBox = document.getElementById("toast");

  const ACTION_REPLY_TIMEOUT_MS = 10000;
  const MAX_PIN_LENGTH = 12;

  let socket = null;
  let nextActionId = 1;
  const pending = new Map(); // action id -> {button, timer}
  let lastSeq = null;
  let countdownTimer = null;
  let toastTimer = null;
  let reconnectDelay = 500;
  let keyHandler = null;

  // ---- DOM building (text only) ----------------------------------------

  const el = window.kioskDom.el; // text-only DOM builder shared with the other page (dom.js)

  function text(value, fallback) {
    if (value === null || value === undefined || value === "") return fallback === undefined ? "" : fallback;
    if (Array.isArray(value)) return value.length ? value.map((v) => text(v)).join(", ") : text(null, fallback);
    if (typeof value === "object") {
      const parts = Object.entries(value).map(([k, v]) => k + ": " + text(v, "-"));
      return parts.length ? parts.join(", ") : text(null, fallback);
    }
    return String(value);
  }

  function btc(value) {
    return value === null || value === undefined || value === "" ? "" : String(value) + " BTC";
  }

  function actionButton(label, action, options) {
    const opts = options || {};
    const button = el("button", {
      type: "button",
      class: "btn " + (opts.kind || ""),
      "data-action": action,
      disabled: opts.disabled ? true : null,
      text: label,
    });
    button.addEventListener("click", () => {
      if (opts.confirmLabel && button.dataset.armed !== "yes") {
        // Two taps for anything that changes the books (collect cash); a first
        // tap left alone falls back after a few seconds.
        button.dataset.armed = "yes";
        button.textContent = opts.confirmLabel;
        setTimeout(() => {
          button.dataset.armed = "";
          button.textContent = label;
        }, 5000);
        return;
      }
      sendAction(action, opts.fields ? opts.fields() : {}, button);
    });
    return button;
  }

  function facts(rows) {
    const list = el("dl", { class: "facts" });
    for (const [label, value, field, cls] of rows) {
      list.append(el("dt", { text: label }), el("dd", { "data-field": field, class: cls || null, text: value }));
    }
    return list;
  }

  // The kiosk restarts its timer when a screen is entered and on every credited
  // note, not when it merely re-sends a screen (a rate refresh, a refused
  // scan). The countdown follows the same rule so it never promises more time
  // than the kiosk will give.
  let countdownKey = null;
  let countdownEnds = 0;
  let screenKey = null;

  function countdown(seconds) {
    if (typeof seconds !== "number" || !(seconds > 0)) return null;
    const node = el("p", { class: "countdown", "data-field": "countdown" });
    if (countdownKey !== screenKey) {
      countdownKey = screenKey;
      countdownEnds = Date.now() + seconds * 1000;
    }
    const ends = countdownEnds;
    const tick = () => {
      const left = Math.max(0, Math.ceil((ends - Date.now()) / 1000));
      node.textContent = left + " s left";
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
    return node;
  }

  // ---- screens -----------------------------------------------------------

  const NETWORK_NAMES = { main: "Bitcoin", test: "Bitcoin testnet", regtest: "Bitcoin regtest" };

  const screens = {
    booting() {
      return [el("section", { class: "centered" },
        el("h1", { text: "Starting up…" }),
        el("div", { class: "spinner", "aria-hidden": "true" }),
        el("p", { class: "muted", text: "The kiosk is checking its devices." }))];
    },

    idle(d) {
      const buttons = el("div", { class: "buttons" },
        actionButton("Buy bitcoin", "start_buy", { kind: "primary", disabled: d.buy_enabled === false }));
      if (d.sell_enabled === true) buttons.append(actionButton("Sell bitcoin", "start_sell"));
      if (d.redeem_enabled === true) buttons.append(actionButton("Redeem a code", "start_redeem"));
      return [
        el("section", { class: "centered" },
          el("h1", { text: "Bitcoin for cash" }),
          el("p", { class: "rate", "data-field": "rate", text: text(d.rate) }),
          d.buy_enabled === false ? el("p", { class: "muted", "data-field": "buy_disabled",
            text: "Buying is not available right now." }) : null,
          d.notice ? el("p", { class: "notice", "data-field": "notice", text: text(d.notice) }) : null),
        buttons,
      ];
    },

    scan_address(d) {
      const network = NETWORK_NAMES[d.network] || "Bitcoin";
      return [
        el("section", { class: "centered" },
          el("h1", { text: "Show your wallet QR code to the camera" }),
          el("p", { class: "muted", "data-field": "network", text: "A " + network + " address, or a bitcoin: link" }),
          d.error ? el("p", { class: "error", "data-field": "error", text: text(d.error) }) : null,
          countdown(d.timeout_s)),
        el("div", { class: "buttons" }, actionButton("Cancel", "cancel")),
      ];
    },

    insert_cash(d) {
      const inserted = typeof d.inserted_minor === "number" && d.inserted_minor > 0;
      const buttons = el("div", { class: "buttons" });
      // Once a note is credited the only way out is to finish: the kiosk never
      // keeps cash without sending coins, so "Cancel" must not suggest otherwise.
      if (!inserted) buttons.append(actionButton("Cancel", "cancel"));
      buttons.append(actionButton("Finish", "finish_cash", { kind: "primary", disabled: d.can_finish !== true }));
      return [
        el("h1", { text: inserted ? "Insert more notes or finish" : "Insert your banknotes" }),
        el("p", { class: "big", "data-field": "inserted", text: text(d.inserted, "0") }),
        el("p", {}, "You get ", el("strong", { "data-field": "btc", text: btc(d.btc) }),
          el("span", { class: "muted", "data-field": "sats", text: " (" + text(d.sats, "0") + " sats)" })),
        facts([
          ["To", text(d.address), "address", "mono"],
          ["Minimum", text(d.min), "min"],
          ["Maximum", text(d.max), "max"],
          ["You can still insert", text(d.room), "room"],
        ]),
        d.message ? el("p", { class: "notice", "data-field": "message", text: text(d.message) }) : null,
        !d.can_finish && inserted ? el("p", { class: "muted", "data-field": "below_min",
          text: "Insert at least " + text(d.min) + " to finish." }) : null,
        el("p", { class: "muted", "data-field": "receipt_available",
          text: d.receipt_available ? "A receipt will be printed." : "No printed receipt is available right now." }),
        countdown(d.timeout_s),
        buttons,
      ];
    },

    confirm(d) {
      return [
        el("h1", { text: "Check and confirm" }),
        facts([
          ["To", text(d.address), "address", "mono"],
          ["Cash", text(d.cash), "cash"],
          ["Fee", text(d.fee), "fee"],
          ["You get", btc(d.btc), "btc"],
          ["Satoshis", text(d.sats), "sats"],
          ["Rate", text(d.rate), "rate"],
        ]),
        countdown(d.timeout_s),
        el("div", { class: "buttons" }, actionButton("Confirm and send", "confirm", { kind: "primary" })),
      ];
    },

    sending(d) {
      return [el("section", { class: "centered" },
        el("h1", { text: "Sending your bitcoin…" }),
        el("div", { class: "spinner", "aria-hidden": "true" }),
        el("p", { "data-field": "btc", text: btc(d.btc) }),
        el("p", { class: "mono muted", "data-field": "address", text: text(d.address) }))];
    },

    receipt(d) {
      return [
        el("h1", { text: "Thank you" }),
        facts([
          ["Cash", text(d.cash), "cash"],
          ["Sent", btc(d.btc), "btc"],
          ["To", text(d.address), "address", "mono"],
          ["Transaction", text(d.txid, "pending: it will be sent shortly"), "txid", "mono"],
        ]),
        el("p", { "data-field": "printed",
          text: d.printed ? "Please take your receipt." : "No receipt was printed." }),
        d.message ? el("p", { class: "notice", "data-field": "message", text: text(d.message) }) : null,
        el("div", { class: "buttons" }, actionButton("Done", "done", { kind: "primary" })),
      ];
    },

    out_of_service(d) {
      return [el("section", { class: "centered" },
        el("h1", { text: "Out of service" }),
        el("p", { class: "rate", "data-field": "reason", text: text(d.reason, "Sorry, this machine is not available.") }))];
    },

    maintenance_login(d) {
      let pin = "";
      const shown = el("div", { class: "pin-display", "data-field": "pin", "aria-label": "PIN" });
      const enter = actionButton("Enter", "service_login", { kind: "primary", fields: () => ({ pin }) });
      const redraw = () => {
        shown.textContent = "•".repeat(pin.length);
        enter.disabled = pin.length === 0;
      };
      const press = (key) => {
        if (key === "clear") pin = "";
        else if (key === "back") pin = pin.slice(0, -1);
        else if (pin.length < MAX_PIN_LENGTH) pin += key;
        redraw();
      };
      const pad = el("div", { class: "pinpad" });
      for (const key of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "back"]) {
        const label = key === "clear" ? "C" : key === "back" ? "⌫" : key;
        pad.append(el("button", { type: "button", class: "btn", "data-key": key, text: label,
          onclick: () => press(key) }));
      }
      keyHandler = (event) => {
        if (/^[0-9]$/.test(event.key)) press(event.key);
        else if (event.key === "Backspace") press("back");
        else if (event.key === "Enter" && pin) enter.click();
      };
      redraw();
      return [
        el("h1", { text: "Service login" }),
        el("p", { class: "muted", text: "Enter the technician PIN." }),
        d.error ? el("p", { class: "error", "data-field": "error", text: text(d.error) }) : null,
        shown,
        pad,
        el("div", { class: "buttons" }, actionButton("Cancel", "cancel"), enter),
      ];
    },

    maintenance(d) {
      const service = (label, what, options) =>
        actionButton(label, "service_action", Object.assign({ fields: () => ({ do: what }) }, options || {}));
      const alerts = Array.isArray(d.alerts) ? d.alerts : [];
      const devices = Array.isArray(d.devices) ? d.devices : [];
      const journal = d.journal && typeof d.journal === "object" ? d.journal : {};
      const reconciliation = Array.isArray(journal.reconciliation) ? journal.reconciliation : [];

      const deviceRows = devices.map((dev) => el("tr", { "data-device": text(dev.name) },
        el("td", { text: text(dev.name) }),
        el("td", { text: text(dev.kind) }),
        el("td", { class: "state-" + text(dev.state), "data-field": "state", text: text(dev.state, "unknown") }),
        el("td", { text: text(dev.detail) }),
        el("td", { class: "muted", text: text(dev.driver) })));

      const identity = [];
      if (d.kiosk_id !== undefined) identity.push("Kiosk " + text(d.kiosk_id));
      if (typeof d.active === "boolean") identity.push(d.active ? "enabled" : "disabled by the operator or a technician");
      return [
        el("h1", { text: "Service menu" }),
        identity.length ? el("p", { class: d.active === false ? "error" : "muted", "data-field": "kiosk",
          text: identity.join(" · ") }) : null,
        alerts.length
          ? el("ul", { class: "alerts", "data-field": "alerts" }, ...alerts.map((a) => el("li", { text: text(a) })))
          : el("p", { class: "ok", "data-field": "alerts", text: "No alerts." }),
        el("h2", { text: "Devices" }),
        devices.length
          ? el("table", { class: "status", "data-field": "devices" },
            el("thead", {}, el("tr", {}, ...["Device", "Kind", "State", "Detail", "Driver"].map((h) => el("th", { text: h })))),
            el("tbody", {}, ...deviceRows))
          : el("p", { class: "muted", text: "No devices reported." }),
        el("h2", { text: "Cash" }),
        keyValues(d.cash, "cash"),
        el("h2", { text: "Journal" }),
        el("p", { "data-field": "journal_open", text: "Open transactions: " + text(journal.open, "0") }),
        reconciliation.length
          ? el("ul", { "data-field": "reconciliation" },
            ...reconciliation.map((item) => el("li", {}, el("strong", { class: "mono", text: text(item.id) + ": " }),
              text(item.summary))))
          : el("p", { class: "muted", "data-field": "reconciliation", text: "Nothing waiting for reconciliation." }),
        el("h2", { text: "Server link (CAS)" }),
        keyValues(d.cas, "cas"),
        el("div", { class: "buttons" },
          service("Print test page", "print_test", { kind: "small" }),
          service("Collect cash", "collect_cash", { kind: "small", confirmLabel: "Tap again: collect cash" }),
          service("Disable kiosk", "disable_kiosk", { kind: "small danger" }),
          service("Enable kiosk", "enable_kiosk", { kind: "small" }),
          service("Exit service", "exit", { kind: "small primary" })),
      ];
    },
  };

  // Screens of other transaction kinds (sell.js) register here, with the page's helpers.
  if (typeof window.kioskExtraScreens === "function") {
    Object.assign(screens, window.kioskExtraScreens({ el, text, actionButton, facts, countdown }));
  }

  // Nested status objects (cash units, CAS link) have shapes the kiosk owns;
  // show them generically so a new field appears without a UI change.
  function keyValues(value, field) {
    if (value === null || value === undefined || (typeof value === "object" && Object.keys(value).length === 0)) {
      return el("p", { class: "muted", "data-field": field, text: "Nothing reported." });
    }
    if (typeof value !== "object") return el("p", { "data-field": field, text: text(value) });
    const list = el("dl", { class: "facts kv", "data-field": field });
    for (const [key, inner] of Object.entries(value)) {
      let shown;
      if (inner !== null && typeof inner === "object" && !Array.isArray(inner) && Object.keys(inner).length) {
        const parts = Object.entries(inner).map(([k, v]) => el("span", { class: statusClass(v),
          text: k.replace(/_/g, " ") + ": " + text(v, "-") }));
        shown = el("dd", {}, ...parts.flatMap((part, i) => (i ? [" · ", part] : [part])));
      } else {
        shown = el("dd", { class: statusClass(inner), text: text(inner, "-") });
      }
      list.append(el("dt", { text: key.replace(/_/g, " ") }), shown);
    }
    return list;
  }

  // Words from the shared status vocabulary get their colour wherever they appear.
  function statusClass(value) {
    return typeof value === "string" && /^[A-Za-z_]+$/.test(value) ? "state-" + value : null;
  }

  function pleaseWait() {
    return [el("section", { class: "centered" },
      el("h1", { text: "Please wait" }),
      el("div", { class: "spinner", "aria-hidden": "true" }))];
  }

  // ---- rendering -----------------------------------------------------------

  function render(message) {
    const name = typeof message.screen === "string" ? message.screen : "";
    const data = message.data && typeof message.data === "object" && !Array.isArray(message.data) ? message.data : {};
    if (typeof message.seq === "number") {
      if (lastSeq !== null && message.seq < lastSeq) return; // a late duplicate
      lastSeq = message.seq;
    }
    if (countdownTimer) clearInterval(countdownTimer);
    countdownTimer = null;
    keyHandler = null;
    for (const [id, entry] of pending) {
      clearTimeout(entry.timer);
      pending.delete(id);
    }
    screenKey = [name, data.timeout_s, data.inserted_minor].join("|");
    let nodes;
    const draw = Object.prototype.hasOwnProperty.call(screens, name) ? screens[name] : pleaseWait;
    try {
      nodes = draw(data);
    } catch (err) {
      // Data the screen did not expect: show something neutral, never a blank page.
      console.warn("cannot draw screen", name, err);
      nodes = pleaseWait();
    }
    screenRoot.replaceChildren(...nodes.filter((n) => n));
    screenRoot.dataset.screen = name;
    screenRoot.dataset.seq = typeof message.seq === "number" ? String(message.seq) : "";
    screenRoot.scrollTop = 0;
    if (typeof data.toast === "string" && data.toast) showToast(data.toast, false);
    else if (toastBox.classList.contains("error")) hideToast(); // a refusal belongs to the screen it was made on
  }

  function hideToast() {
    toastBox.hidden = true;
    if (toastTimer) clearTimeout(toastTimer);
    toastTimer = null;
  }

  function showToast(message, isError) {
    toastBox.textContent = message;
    toastBox.classList.toggle("error", Boolean(isError));
    toastBox.hidden = false;
    if (toastTimer) clearTimeout(toastTimer);
    toastTimer = setTimeout(hideToast, 6000);
  }

  // ---- actions ---------------------------------------------------------------

  function sendAction(action, fields, button) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showToast("Not connected to the kiosk. Please wait a moment and try again.", true);
      return;
    }
    const id = nextActionId++;
    const message = Object.assign({}, fields, { action, id });
    if (button) button.disabled = true; // one tap, one action
    const timer = setTimeout(() => {
      pending.delete(id);
      if (button) button.disabled = false;
      showToast("The kiosk did not answer. Please try again.", true);
    }, ACTION_REPLY_TIMEOUT_MS);
    pending.set(id, { button, timer });
    socket.send(JSON.stringify(message));
  }

  function onReply(reply) {
    const entry = pending.get(reply.reply_to);
    if (entry) {
      clearTimeout(entry.timer);
      pending.delete(reply.reply_to);
      if (entry.button && entry.button.isConnected) entry.button.disabled = false;
    }
    if (reply.ok !== true) showToast(text(reply.error, "That did not work."), true);
  }

  // ---- connection ------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws");
    connection.dataset.state = "connecting";
    socket.addEventListener("open", () => {
      connection.dataset.state = "open";
      reconnectDelay = 500;
      lastSeq = null; // a restarted kiosk counts from the start again
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        console.warn("ignoring a message that is not JSON");
        return;
      }
      if (!message || typeof message !== "object") return;
      if (Object.prototype.hasOwnProperty.call(message, "reply_to")) onReply(message);
      else if ("screen" in message) render(message);
    });
    socket.addEventListener("close", () => {
      connection.dataset.state = "closed";
      connection.textContent = "Reconnecting to the kiosk…";
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 5000);
    });
  }

  document.addEventListener("keydown", (event) => { if (keyHandler) keyHandler(event); });
  document.addEventListener("contextmenu", (event) => event.preventDefault()); // long-press on touch screens

  connect();
})();
