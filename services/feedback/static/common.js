// LiFT feedback: what the annotation page (app.js) and the overview (overview.js) share.
// Plain browser JS, no build step; loaded before each page's own script. Server text only
// ever goes into textContent.
"use strict";

window.LiftFeedback = (function () {
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function showStatus(text, kind) {
    const el = document.getElementById("status");
    el.textContent = text || "";
    el.className = "status" + (text ? " " + (kind || "error") : "");
  }

  async function errorFrom(resp) {
    let code = "HTTP_" + resp.status;
    let message = "the server answered " + resp.status + " " + resp.statusText;
    try {
      const body = await resp.json();
      if (body && body.error && typeof body.error.message === "string") {
        code = String(body.error.code || code);
        message = body.error.message;
      }
    } catch (e) {
      // not the project's error JSON: keep the status line
    }
    return new ApiError(resp.status, code, message);
  }

  // One JSON call: the reply's JSON, or an ApiError with the server's message.
  async function request(method, path, headers, body) {
    const all = Object.assign({ Accept: "application/json" }, headers);
    const init = { method: method, headers: all, cache: "no-store" };
    if (body !== undefined) {
      all["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "NETWORK", "cannot reach the feedback service (" + e.message + ")");
    }
    if (!resp.ok) throw await errorFrom(resp);
    return resp.json();
  }

  // Whether the service wants tokens. With tokens on, /v1/info itself wants one: a 401 there
  // says "ask for one". null when the info could not be read (the status line says why).
  async function tokensOn(getInfo) {
    try {
      const info = await getInfo();
      return !!info.auth;
    } catch (e) {
      if (e.status !== 401) {
        showStatus("cannot read the service's info: " + e.message, "error");
        return null;
      }
      return true;
    }
  }

  return {
    ApiError: ApiError,
    errorFrom: errorFrom,
    showStatus: showStatus,
    request: request,
    tokensOn: tokensOn,
  };
})();
