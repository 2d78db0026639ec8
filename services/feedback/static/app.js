// The annotation page of `lift feedback serve`: sign in, watch a video, rate it on the three
// LiFT dimensions with reasons, skip / flag / undo; everything by keyboard as well as mouse.
// Server text (prompts, messages) is hostile input: it only ever goes through textContent.
"use strict";

(function () {
  const DIMENSIONS = [
    {
      name: "semantic_consistency",
      title: "Semantic consistency",
      help: "Does the video show what the prompt says: the subjects, their attributes, the " +
        "actions and the scene?",
    },
    {
      name: "motion_smoothness",
      title: "Motion smoothness",
      help: "Are the movements natural and continuous: no jitter, freezes, sudden jumps, " +
        "stutter or physically impossible motion?",
    },
    {
      name: "video_fidelity",
      title: "Video fidelity",
      help: "Is the video realistic and clean: sharp, undistorted objects and faces, no blur, " +
        "noise, flicker or visual artifacts?",
    },
  ];
  const LABELS = ["good", "normal", "bad"];
  const ARROWS = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1 };
  const DEFAULT_STEP_S = 1 / 25;
  const TOKEN_KEY = "lift.feedback.token";
  const NAME_KEY = "lift.feedback.annotator";

  const $ = (id) => document.getElementById(id);
  const state = {
    auth: null, // true: bearer token; false: X-Lift-Annotator name
    credential: null,
    item: null,
    labels: {},
    videoUrl: null,
    busy: false,
    loadSeq: 0,
  };

  // ---- shared with the overview (common.js): status line, JSON calls, errors ------------

  const { ApiError, errorFrom, showStatus, request, tokensOn } = window.LiftFeedback;

  // ---- HTTP -------------------------------------------------------------------------------

  function authHeaders() {
    if (state.credential === null) return {};
    if (state.auth) return { Authorization: "Bearer " + state.credential };
    return { "X-Lift-Annotator": state.credential };
  }

  function api(method, path, body) {
    return request(method, path, authHeaders(), body);
  }

  // The route of an item action: the id goes through encodeURIComponent (it is server text).
  function itemPath(itemId, action) {
    return "v1/items/" + encodeURIComponent(itemId) + action;
  }

  // ---- sign-in ----------------------------------------------------------------------------

  function storageKey() {
    return state.auth ? TOKEN_KEY : NAME_KEY;
  }

  function showSignIn(message) {
    $("rate").hidden = true;
    $("done").hidden = true;
    $("who").hidden = true;
    $("progress-box").hidden = true;
    $("signin").hidden = false;
    $("signin-token").hidden = !state.auth;
    $("signin-name").hidden = !!state.auth;
    if (message) showStatus(message, "error");
    const input = state.auth ? $("token-input") : $("name-input");
    input.value = "";
    input.focus();
  }

  async function signIn(credential) {
    state.credential = credential;
    try {
      const me = await api("GET", "v1/me");
      sessionStorage.setItem(storageKey(), credential);
      $("signin").hidden = true;
      $("who").hidden = false;
      $("who-name").textContent = "signed in as " + me.annotator;
      showStatus("");
      showProgress(me);
      await loadNext();
    } catch (e) {
      state.credential = null;
      sessionStorage.removeItem(storageKey());
      showSignIn(e.message);
    }
  }

  function onSignInSubmit(ev) {
    ev.preventDefault();
    if (state.auth) {
      const token = $("token-input").value.trim();
      if (!token) {
        showStatus("enter the access token the operator gave you", "error");
        return;
      }
      signIn(token);
    } else {
      const name = $("name-input").value.trim();
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
        showStatus("a name is 1 to 64 letters, digits, '_', '.' or '-'", "error");
        $("name-input").focus();
        return;
      }
      signIn(name);
    }
  }

  function signOut() {
    sessionStorage.removeItem(storageKey());
    state.credential = null;
    state.item = null;
    setVideo(null);
    showStatus("signed out", "info");
    showSignIn();
  }

  // ---- progress ---------------------------------------------------------------------------

  function showProgress(me) {
    const total = Number(me.total) || 0;
    const remaining = Number(me.remaining) || 0;
    const handled = Math.max(0, total - remaining);
    const extra = [];
    if (me.skipped) extra.push("skipped " + me.skipped);
    if (me.flagged) extra.push("flagged " + me.flagged);
    $("progress-text").textContent =
      "rated " + me.rated + " of " + total + ", remaining " + remaining +
      (extra.length ? " (" + extra.join(", ") + ")" : "");
    const bar = $("progress-bar");
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(handled));
    $("progress-fill").style.width = (total ? (100 * handled) / total : 0) + "%";
    $("progress-box").hidden = false;
  }

  // ---- the item ---------------------------------------------------------------------------

  function setVideo(url) {
    const video = $("video");
    if (state.videoUrl) URL.revokeObjectURL(state.videoUrl);
    state.videoUrl = url;
    if (url) {
      video.src = url;
      video.loop = $("loop").getAttribute("aria-pressed") === "true";
      video.play().catch(() => {
        // autoplay refused: the play button / Space still work
      });
    } else {
      video.pause();
      video.removeAttribute("src");
      video.load();
    }
    updateReadout();
  }

  async function loadVideo(item, seq) {
    const path = item.video_url;
    let resp;
    try {
      resp = await fetch(path, { headers: authHeaders(), cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "NETWORK", "cannot fetch the video (" + e.message + ")");
    }
    if (!resp.ok) throw await errorFrom(resp);
    const blob = await resp.blob();
    if (seq !== state.loadSeq) return; // a newer item replaced this one meanwhile
    setVideo(URL.createObjectURL(blob));
  }

  async function loadNext() {
    const seq = ++state.loadSeq;
    const next = await api("GET", "v1/next");
    if (seq !== state.loadSeq) return;
    showProgress(next);
    state.item = next.item;
    resetForm();
    if (!next.item) {
      setVideo(null);
      // total 0: this annotator never had anything (an empty queue, or others rated it all)
      const never = next.total === 0;
      $("done-title").textContent = never ? "Nothing to rate yet" : "All done";
      $("done-text").textContent = never
        ? "No videos are waiting for you: the queue is empty, or other annotators already " +
          "rated every video enough times. Reload later; the operator adds videos with " +
          "lift feedback serve --videos DIR or lift feedback sample."
        : "Nothing is left for you to rate. Thank you!";
      $("rate").hidden = true;
      $("done").hidden = false;
      document.body.dataset.itemId = "";
      focusPage();
      return;
    }
    $("done").hidden = true;
    $("rate").hidden = false;
    $("prompt").textContent = next.item.prompt;
    $("item-id").textContent = next.item.item_id;
    document.body.dataset.itemId = next.item.item_id;
    focusPage();
    try {
      await loadVideo(next.item, seq);
    } catch (e) {
      showStatus("video of item " + next.item.item_id + ": " + e.message, "error");
    }
  }

  // After an action focus returns to the page, where the keys are shortcuts.
  function focusPage() {
    const active = document.activeElement;
    if (active && active !== document.body && typeof active.blur === "function") active.blur();
  }

  // ---- rating form ------------------------------------------------------------------------

  function buildDimensions() {
    const root = $("dimensions");
    DIMENSIONS.forEach((dim, i) => {
      const box = document.createElement("fieldset");
      box.className = "dimension";
      box.id = "dim-" + dim.name;
      const legend = document.createElement("legend");
      legend.textContent = dim.title;
      box.appendChild(legend);
      const help = document.createElement("p");
      help.className = "help";
      help.id = "help-" + dim.name;
      help.textContent = dim.help;
      box.appendChild(help);

      const group = document.createElement("div");
      group.className = "labels";
      group.setAttribute("role", "radiogroup");
      group.setAttribute("aria-label", dim.title);
      group.setAttribute("aria-describedby", help.id);
      LABELS.forEach((label, j) => {
        const key = String(3 * i + j + 1);
        const b = document.createElement("button");
        b.type = "button";
        b.className = "label label-" + label;
        b.id = "label-" + dim.name + "-" + label;
        b.setAttribute("role", "radio");
        b.setAttribute("aria-checked", "false");
        b.setAttribute("aria-keyshortcuts", key);
        b.dataset.dimension = dim.name;
        b.dataset.label = label;
        b.textContent = label + " (" + key + ")";
        b.tabIndex = j === 0 ? 0 : -1; // one tab stop per group; arrows move inside
        b.addEventListener("click", () => choose(dim.name, label, "click"));
        group.appendChild(b);
      });
      box.appendChild(group);

      const rid = "reason-" + dim.name;
      const lab = document.createElement("label");
      lab.htmlFor = rid;
      lab.className = "reason-label";
      lab.appendChild(document.createTextNode("Reason "));
      const mark = document.createElement("span");
      mark.className = "req";
      mark.id = "req-" + dim.name;
      lab.appendChild(mark);
      box.appendChild(lab);
      const ta = document.createElement("textarea");
      ta.id = rid;
      ta.rows = 2;
      ta.maxLength = 2000;
      ta.dataset.dimension = dim.name;
      ta.placeholder = "what is wrong, and when (optional when good)";
      ta.addEventListener("input", validate);
      box.appendChild(ta);
      root.appendChild(box);
    });
  }

  // how: "key" (1-9), "click" or "arrow" (arrow keys inside the radio group).
  function choose(dimension, label, how) {
    if (!state.item) return;
    state.labels[dimension] = label;
    for (const l of LABELS) {
      const b = $("label-" + dimension + "-" + l);
      b.setAttribute("aria-checked", l === label ? "true" : "false");
      b.tabIndex = l === label ? 0 : -1;
    }
    validate();
    if (how === "arrow") {
      $("label-" + dimension + "-" + label).focus();
    } else if (label !== "good") {
      $("reason-" + dimension).focus();
    } else if (how === "key") {
      focusPage();
    }
  }

  function resetForm() {
    state.labels = {};
    for (const dim of DIMENSIONS) {
      for (const l of LABELS) {
        const b = $("label-" + dim.name + "-" + l);
        b.setAttribute("aria-checked", "false");
        b.tabIndex = l === LABELS[0] ? 0 : -1;
      }
      $("reason-" + dim.name).value = "";
    }
    closeFlag(false);
    $("flag-note").value = "";
    validate();
  }

  // What still keeps the rating from being submitted, one sentence per gap.
  function missing() {
    const gaps = [];
    for (const dim of DIMENSIONS) {
      const label = state.labels[dim.name];
      if (!label) {
        gaps.push("choose a label for " + dim.title.toLowerCase());
      } else if (label !== "good" && !$("reason-" + dim.name).value.trim()) {
        gaps.push("write why " + dim.title.toLowerCase() + " is " + label);
      }
    }
    return gaps;
  }

  function validate() {
    for (const dim of DIMENSIONS) {
      const label = state.labels[dim.name];
      const required = !!label && label !== "good";
      const ta = $("reason-" + dim.name);
      ta.required = required;
      ta.setAttribute("aria-required", required ? "true" : "false");
      const empty = required && !ta.value.trim();
      ta.setAttribute("aria-invalid", empty ? "true" : "false");
      ta.classList.toggle("invalid", empty);
      $("req-" + dim.name).textContent = required ? "(required: the label is " + label + ")" :
        "(optional)";
    }
    const gaps = missing();
    $("submit").disabled = !state.item || gaps.length > 0 || state.busy;
    $("missing").textContent = state.item && gaps.length ? "To submit: " + gaps.join("; ") + "." : "";
    return gaps;
  }

  // ---- actions ----------------------------------------------------------------------------

  async function act(fn) {
    if (state.busy) return;
    state.busy = true;
    validate();
    try {
      await fn();
    } catch (e) {
      if (e.status === 401) {
        sessionStorage.removeItem(storageKey());
        state.credential = null;
        showSignIn(e.message);
      } else {
        showStatus(e.message, "error");
        // Rated or removed elsewhere (another tab, the operator): move on, keep the message.
        if (e.status === 409 || e.status === 404) {
          try {
            await loadNext();
          } catch (e2) {
            showStatus(e.message + " / " + e2.message, "error");
          }
        }
      }
    } finally {
      state.busy = false;
      validate();
    }
  }

  function submit() {
    if (!state.item) return;
    const gaps = validate();
    if (gaps.length) {
      showStatus("Not yet: " + gaps.join("; ") + ".", "error");
      return;
    }
    const reasons = {};
    for (const dim of DIMENSIONS) {
      const text = $("reason-" + dim.name).value.trim();
      if (text) reasons[dim.name] = text;
    }
    const itemId = state.item.item_id;
    act(async () => {
      const body = { item_id: itemId, labels: Object.assign({}, state.labels), reasons: reasons };
      const me = await api("POST", "v1/ratings", body);
      showProgress(me);
      showStatus("rated " + itemId, "info");
      await loadNext();
    });
  }

  function skip() {
    if (!state.item) return;
    const itemId = state.item.item_id;
    act(async () => {
      const me = await api("POST", itemPath(itemId, ":skip"), {});
      showProgress(me);
      showStatus("skipped " + itemId, "info");
      await loadNext();
    });
  }

  function openFlag() {
    if (!state.item) return;
    $("flag-panel").hidden = false;
    $("flag").setAttribute("aria-expanded", "true");
    $("flag-note").focus();
  }

  function closeFlag(refocus) {
    $("flag-panel").hidden = true;
    $("flag").setAttribute("aria-expanded", "false");
    if (refocus) focusPage();
  }

  function flag() {
    if (!state.item) return;
    const itemId = state.item.item_id;
    const note = $("flag-note").value.trim();
    act(async () => {
      const me = await api("POST", itemPath(itemId, ":flag"), note ? { note: note } : {});
      closeFlag(true);
      showProgress(me);
      showStatus("flagged " + itemId, "info");
      await loadNext();
    });
  }

  function undo() {
    act(async () => {
      const res = await api("POST", "v1/undo", {});
      showProgress(res);
      if (res.undone) {
        showStatus("undid the " + res.undone.kind + " of " + res.undone.item_id, "info");
      } else {
        showStatus("nothing to undo", "info");
      }
      await loadNext();
    });
  }

  // ---- video controls ---------------------------------------------------------------------

  function frameStep() {
    const fps = state.item && Number(state.item.fps);
    return fps > 0 ? 1 / fps : DEFAULT_STEP_S;
  }

  function togglePlay() {
    const video = $("video");
    if (!video.src) return;
    if (video.paused) {
      video.play().catch((e) => showStatus("cannot play the video: " + e.message, "error"));
    } else {
      video.pause();
    }
  }

  function stepFrame(direction) {
    const video = $("video");
    if (!video.src) return;
    video.pause();
    const step = frameStep();
    const duration = Number.isFinite(video.duration) ? video.duration : Infinity;
    // Land in the middle of the target frame so rounding never shows the neighbour.
    const frame = Math.floor(video.currentTime / step + 1e-6) + direction;
    const t = Math.min(Math.max(0, (frame + 0.5) * step), Math.max(0, duration - step / 2));
    video.currentTime = t;
    updateReadout();
  }

  function toggleLoop() {
    const button = $("loop");
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "Loop on" : "Loop off";
    $("video").loop = on;
  }

  function updateReadout() {
    const video = $("video");
    const out = $("readout");
    if (!video.src) {
      out.textContent = "";
      return;
    }
    const step = frameStep();
    const t = video.currentTime || 0;
    const d = Number.isFinite(video.duration) ? video.duration : 0;
    const frames = state.item && state.item.frames ? Number(state.item.frames) :
      Math.max(1, Math.round(d / step));
    const frame = Math.min(frames, Math.floor(t / step + 1e-6) + 1);
    out.textContent = t.toFixed(2) + " / " + d.toFixed(2) + " s · frame " + frame + " / " + frames;
    $("play").textContent = video.paused ? "Play" : "Pause";
  }

  // ---- keyboard ---------------------------------------------------------------------------

  function isTextBox(el) {
    if (!el) return false;
    if (el.tagName === "TEXTAREA") return true;
    if (el.tagName !== "INPUT") return false;
    return !["button", "checkbox", "radio", "submit", "reset"].includes(el.type);
  }

  function onKey(ev) {
    const target = document.activeElement;
    const signedIn = state.credential !== null && $("signin").hidden;
    if (!signedIn) return; // the sign-in form is an ordinary form
    const key = ev.key;

    if (isTextBox(target)) {
      if (key === "Escape") {
        ev.preventDefault();
        if (target.id === "flag-note") closeFlag(true);
        else target.blur();
      } else if (key === "Enter" && target.id === "flag-note" && !ev.shiftKey) {
        ev.preventDefault();
        flag();
      } else if (key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        submit();
      }
      return; // every other key is text
    }
    if (ev.altKey) return;
    if (ev.ctrlKey || ev.metaKey) {
      if (key.toLowerCase() === "z") {
        ev.preventDefault();
        undo();
      } else if (key === "Enter") {
        ev.preventDefault();
        submit();
      }
      return;
    }
    const onButton = target && target.tagName === "BUTTON";
    if (key === "Escape") {
      if (!$("flag-panel").hidden) closeFlag(true);
      else focusPage();
      return;
    }
    const onRadio = onButton && target.getAttribute("role") === "radio";
    if (onRadio && ARROWS[key]) {
      // A radio group: the arrows move the choice within the dimension.
      ev.preventDefault();
      const dim = target.dataset.dimension;
      const at = LABELS.indexOf(state.labels[dim] || target.dataset.label);
      const next = LABELS[(at + ARROWS[key] + LABELS.length) % LABELS.length];
      choose(dim, state.labels[dim] ? next : target.dataset.label, "arrow");
      return;
    }
    if (key === "Enter" && onRadio) {
      // As in a form of native radio buttons, Enter submits.
      ev.preventDefault();
      submit();
      return;
    }
    if ((key === "Enter" || key === " ") && onButton) return; // the button's own action

    let handled = true;
    if (key === " ") togglePlay();
    else if (key === ",") stepFrame(-1);
    else if (key === ".") stepFrame(1);
    else if (key === "Enter") submit();
    else if (/^[1-9]$/.test(key)) {
      const n = Number(key) - 1;
      const dim = DIMENSIONS[Math.floor(n / 3)];
      choose(dim.name, LABELS[n % 3], "key");
    } else {
      switch (key.toLowerCase()) {
        case "l": toggleLoop(); break;
        case "s": skip(); break;
        case "f": openFlag(); break;
        case "u": undo(); break;
        default: handled = false;
      }
    }
    if (handled) ev.preventDefault();
  }

  // ---- start ------------------------------------------------------------------------------

  async function start() {
    buildDimensions();
    $("signin-form").addEventListener("submit", onSignInSubmit);
    $("sign-out").addEventListener("click", signOut);
    $("rating-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      submit();
    });
    $("skip").addEventListener("click", skip);
    $("flag").addEventListener("click", openFlag);
    $("flag-confirm").addEventListener("click", flag);
    $("flag-cancel").addEventListener("click", () => closeFlag(true));
    $("undo").addEventListener("click", undo);
    $("done-undo").addEventListener("click", undo);
    $("play").addEventListener("click", togglePlay);
    $("frame-back").addEventListener("click", () => stepFrame(-1));
    $("frame-forward").addEventListener("click", () => stepFrame(1));
    $("loop").addEventListener("click", toggleLoop);
    const video = $("video");
    for (const ev of ["timeupdate", "seeked", "play", "pause", "loadedmetadata"]) {
      video.addEventListener(ev, updateReadout);
    }
    video.addEventListener("error", () => {
      if (video.getAttribute("src")) showStatus("this browser cannot play the video", "error");
    });
    document.addEventListener("keydown", onKey);

    const auth = await tokensOn(() => api("GET", "v1/info"));
    if (auth === null) return;
    state.auth = auth;
    const saved = sessionStorage.getItem(storageKey());
    if (saved) await signIn(saved);
    else showSignIn();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
