// The API client: OAuth2 client-credentials login, the token in sessionStorage, JSON requests.
"use strict";

const TOKEN_KEY = "vpp.token";

class AuthError extends Error {}

function storedToken() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
    // Treat a token as gone a little before it expires, so no request is sent with a dead one.
    if (saved && saved.token && saved.expiresAt > Date.now() + 5000) return saved;
  } catch (_ignored) {
    /* a corrupt entry is the same as none */
  }
  sessionStorage.removeItem(TOKEN_KEY);
  return null;
}

function problemDetail(body, fallback) {
  if (body && typeof body === "object") return body.detail || body.error_description || body.title || fallback;
  return fallback;
}

async function login(clientId, clientSecret) {
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret });
  const response = await fetch("/api/v1/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form,
  });
  const body = await response.json().catch(() => null);
  if (response.status === 429) {
    // Too many failed attempts for this client id: say when to try again rather than "wrong secret".
    const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new AuthError(t("login_throttled", { s: Number.isFinite(wait) ? wait : 60 }));
  }
  if (response.status === 401) throw new AuthError(t("login_wrong", { detail: problemDetail(body, "HTTP 401") }));
  if (!response.ok) throw new AuthError(problemDetail(body, `HTTP ${response.status}`));
  const role = String(body.scope || "").split(":")[0];
  if (role !== "operator") throw new AuthError(t("not_operator", { role }));
  const saved = { token: body.access_token, expiresAt: Date.now() + body.expires_in * 1000, clientId };
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify(saved));
  return saved;
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
}

async function api(path, { method = "GET", body } = {}) {
  const saved = storedToken();
  if (!saved) throw new AuthError(t("session_expired"));
  const headers = { Authorization: `Bearer ${saved.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => null);
  if (response.status === 401) {
    logout();
    throw new AuthError(t("session_expired"));
  }
  if (!response.ok) throw new Error(problemDetail(data, `HTTP ${response.status}`));
  return data;
}
