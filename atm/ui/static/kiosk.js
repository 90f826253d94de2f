// The page's runtime: the connection to the kiosk, the screen registry and the text
// lookup. Screens live in other files (app.js: buy, idle, out of service; service.js:
// the technician's menu; sell.js: sell and redeem) and register a renderer by name:
//   window.kioskScreens.register("insert_cash", (data, ui) => [nodes...]);
// A renderer returns DOM nodes built with ui.el (text only, never HTML) and takes every
// word from the language files through ui.t("section.key", {values}) — no customer
// text is written in a script. The kiosk validates every action; the page holds no
// state that matters.
"use strict";

(function () {
  const ACTION_REPLY_TIMEOUT_MS = 10000;
  const DEFAULT_LANGUAGE = "en";

  const el = window.kioskDom.el;
  const renderers = Object.create(null);
  const catalogues = Object.create(null);   // language -> {section: {key: text}}
  const loading = Object.create(null);      // language -> Promise

  let socket = null;
  let nextActionId = 1;
  const pending = new Map(); // action id -> {button, timer}
  let lastSeq = null;
  let latest = null;          // the newest screen message from the kiosk
  let language = DEFAULT_LANGUAGE;
  let timers = [];
  let toastTimer = null;
  let reconnectDelay = 500;
  let keyHandler = null;
  let screenRoot = null;
  let connection = null;
  let toastBox = null;

  // ---- texts ------------------------------------------------------------------

  function loadTexts(lang) {
    if (catalogues[lang]) return Promise.resolve(catalogues[lang]);
    if (!loading[lang]) {
      loading[lang] = fetch("/texts/" + encodeURIComponent(lang) + ".json", { cache: "no-cache" })
        .then((response) => (response.ok ? response.json() : {}))
        .catch(() => ({}))
        .then((catalogue) => {
          catalogues[lang] = catalogue && typeof catalogue === "object" ? catalogue : {};
          delete loading[lang];
          return catalogues[lang];
        });
    }
    return loading[lang];
  }

  function lookup(lang, key) {
    const dot = key.indexOf(".");
    const section = (catalogues[lang] || {})[key.slice(0, dot)];
    const entry = section ? section[key.slice(dot + 1)] : undefined;
    return typeof entry === "string" ? entry : undefined;
  }

  // t("screen.countdown", {seconds: 12}) -> "12 s left" in the screen's language;
  // English when the language lacks the key; the key itself if no file has it.
  function t(key, values) {
    const template = lookup(language, key) ?? lookup(DEFAULT_LANGUAGE, key) ?? key;
    return template.replace(/\{([a-z_]+)\}/g, (whole, name) =>
      values && values[name] !== undefined && values[name] !== null ? String(values[name]) : whole);
  }

  // A message the kiosk sent ({key, values}) in words; anything else shows nothing.
  function say(message) {
    if (!message || typeof message !== "object" || typeof message.key !== "string") return "";
    return t(message.key, message.values || {});
  }

  // ---- building blocks screens share --------------------------------------------

  function text(value, fallback) {
    if (value === null || value === undefined || value === "") return fallback === undefined ? "" : fallback;
    if (Array.isArray(value)) return value.length ? value.map((v) => text(v)).join(", ") : text(null, fallback);
    if (typeof value === "object") {
      const parts = Object.entries(value).map(([k, v]) => k + ": " + text(v, "-"));
      return parts.length ? parts.join(", ") : text(null, fallback);
    }
    return String(value);
  }

  function actionButton(label, action, options) {
    const opts = options || {};
    const button = el("button", {
      type: "button",
      class: "btn " + (opts.kind || ""),
      "data-action": action,
      "data-do": opts.do || null,
      disabled: opts.disabled ? true : null,
      text: label,
    });
    button.addEventListener("click", () => {
      if (opts.confirm && button.dataset.armed !== "yes") {
        // Two taps for anything that changes the books; a first tap left alone falls back.
        button.dataset.armed = "yes";
        button.textContent = t("screen.tap_again");
        later(() => {
          button.dataset.armed = "";
          button.textContent = label;
        }, 5000);
        return;
      }
      const fields = opts.fields ? opts.fields() : {};
      if (opts.do) fields.do = opts.do;
      sendAction(action, fields, button, opts.onDone);
    });
    return button;
  }

  function facts(rows) {
    const list = el("dl", { class: "facts" });
    for (const [label, value, field, cls] of rows) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", { text: label }), el("dd", { "data-field": field, class: cls || null, text: value }));
    }
    return list;
  }

  function later(fn, ms) {
    const id = setTimeout(fn, ms);
    timers.push(() => clearTimeout(id));
  }

  function every(fn, ms) {
    const id = setInterval(fn, ms);
    timers.push(() => clearInterval(id));
  }

  // The kiosk restarts its timer when a screen is entered and on every credited note,
  // not when it merely re-sends a screen; the countdown follows the same rule so it
  // never promises more time than the kiosk will give.
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
      node.textContent = t("screen.countdown", { seconds: left });
    };
    tick();
    every(tick, 1000);
    return node;
  }

  function onKey(handler) {
    keyHandler = handler;
  }

  // Who runs this kiosk and how to reach them: on every customer screen, same place.
  function operatorLine(d) {
    const op = d && d.operator && typeof d.operator === "object" ? d.operator : {};
    if (!op.name && !op.contact) return null;
    return el("footer", { class: "operator", "data-field": "operator" },
      op.name ? el("span", { text: t("screen.operator", { name: op.name }) }) : null,
      op.contact ? el("span", { text: t("screen.contact", { contact: op.contact }) }) : null);
  }

  const ui = { el, t, say, text, actionButton, facts, countdown, later, every, onKey, operatorLine, send: sendAction };

  window.kioskScreens = {
    register(name, renderer) {
      if (typeof renderer !== "function") throw new TypeError("a screen renderer is a function");
      renderers[name] = renderer;
    },
    has(name) {
      return Object.prototype.hasOwnProperty.call(renderers, name);
    },
    ui,
  };

  function pleaseWait() {
    return [el("section", { class: "centered" },
      el("h1", { text: t("screen.please_wait") }),
      el("div", { class: "spinner", "aria-hidden": "true" }))];
  }

  // ---- rendering ----------------------------------------------------------------

  function receive(message) {
    if (typeof message.seq === "number") {
      if (lastSeq !== null && message.seq < lastSeq) return; // a late duplicate
      lastSeq = message.seq;
    }
    latest = message;
    const data = message.data && typeof message.data === "object" ? message.data : {};
    const lang = typeof data.language === "string" ? data.language : DEFAULT_LANGUAGE;
    // Draw once the words are here; a newer screen arriving meanwhile wins.
    Promise.all([loadTexts(DEFAULT_LANGUAGE), loadTexts(lang)]).then(() => {
      if (latest === message) render(message, lang);
    });
  }

  function render(message, lang) {
    const name = typeof message.screen === "string" ? message.screen : "";
    const data = message.data && typeof message.data === "object" && !Array.isArray(message.data) ? message.data : {};
    language = lang;
    document.documentElement.lang = lang;
    for (const stop of timers) stop();
    timers = [];
    keyHandler = null;
    for (const [id, entry] of pending) {
      clearTimeout(entry.timer);
      pending.delete(id);
    }
    screenKey = [name, data.timeout_s, data.inserted_minor].join("|");
    let nodes;
    const draw = window.kioskScreens.has(name) ? renderers[name] : pleaseWait;
    try {
      nodes = draw(data, ui);
    } catch (err) {
      // Data the screen did not expect: show something neutral, never a blank page.
      console.warn("cannot draw screen", name, err);
      nodes = pleaseWait();
    }
    const previousScroll = screenRoot.dataset.screen === name ? screenRoot.scrollTop : 0;
    screenRoot.replaceChildren(...nodes.filter((n) => n));
    screenRoot.dataset.screen = name;
    screenRoot.dataset.language = lang;
    screenRoot.dataset.seq = typeof message.seq === "number" ? String(message.seq) : "";
    screenRoot.scrollTop = previousScroll;
    connection.textContent = t("screen.reconnecting");
    if (toastBox.classList.contains("error")) hideToast(); // a refusal belongs to the screen it was made on
  }

  function hideToast() {
    toastBox.hidden = true;
    if (toastTimer) clearTimeout(toastTimer);
    toastTimer = null;
  }

  function showToast(words, isError) {
    toastBox.textContent = words;
    toastBox.classList.toggle("error", Boolean(isError));
    toastBox.hidden = false;
    if (toastTimer) clearTimeout(toastTimer);
    toastTimer = setTimeout(hideToast, 6000);
  }

  // ---- actions ------------------------------------------------------------------

  // onDone runs once the kiosk answered that the action went through.
  function sendAction(action, fields, button, onDone) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showToast(t("screen.not_connected"), true);
      return;
    }
    const id = nextActionId++;
    const message = Object.assign({}, fields, { action, id });
    if (button) button.disabled = true; // one tap, one action
    const timer = setTimeout(() => {
      pending.delete(id);
      if (button) button.disabled = false;
      showToast(t("screen.no_answer"), true);
    }, ACTION_REPLY_TIMEOUT_MS);
    pending.set(id, { button, timer, onDone });
    socket.send(JSON.stringify(message));
  }

  function onReply(reply) {
    const entry = pending.get(reply.reply_to);
    if (entry) {
      clearTimeout(entry.timer);
      pending.delete(reply.reply_to);
      if (entry.button && entry.button.isConnected) entry.button.disabled = false;
      if (reply.ok === true && entry.onDone) entry.onDone(reply);
    }
    // The customer reads the kiosk's message in their language, never the technical error.
    if (reply.ok !== true) showToast(say(reply.message) || t("message.did_not_work"), true);
  }

  // ---- connection ---------------------------------------------------------------

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
      else if ("screen" in message) receive(message);
    });
    socket.addEventListener("close", () => {
      connection.dataset.state = "closed";
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 5000);
    });
  }

  function start() {
    screenRoot = document.getElementById("screen");
    connection = document.getElementById("connection");
    toastBox = document.getElementById("toast");
    document.addEventListener("keydown", (event) => { if (keyHandler) keyHandler(event); });
    document.addEventListener("contextmenu", (event) => event.preventDefault()); // long-press on touch screens
    loadTexts(DEFAULT_LANGUAGE).then(() => { connection.textContent = t("screen.reconnecting"); });
    connect();
  }

  // Every screen file loads before this runs (scripts at the end of <body> run in order).
  document.addEventListener("DOMContentLoaded", start);
})();
