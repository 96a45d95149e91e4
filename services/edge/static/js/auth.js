// The API token a protected edge asks for (--api-token). It comes from the page's address
// (…/#token=THE_TOKEN: a fragment never reaches the server or its logs) or from the token field,
// and is kept for this tab only (sessionStorage). Every API request carries it.

const KEY = "parley.apiToken";

export function captureTokenFromAddress() {
  const found = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!found) return;
  setToken(decodeURIComponent(found[1]));
  history.replaceState(null, "", location.pathname + location.search); // out of sight and history
}

export function setToken(token) {
  if (token) sessionStorage.setItem(KEY, token);
  else sessionStorage.removeItem(KEY);
}

export function hasToken() {
  return Boolean(sessionStorage.getItem(KEY));
}

export function apiFetch(url, options = {}) {
  const token = sessionStorage.getItem(KEY);
  const headers = token ? { ...options.headers, Authorization: `Bearer ${token}` } : options.headers;
  return fetch(url, { ...options, headers });
}
