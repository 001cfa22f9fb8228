import { useState } from "preact/hooks";
import { api } from "../api.js";
import { sentence } from "../format.js";
import { navigate } from "../route.js";

/** The registry's own credentials (htpasswd) open a session held in an HttpOnly cookie. */
export function LoginPage({ back, onLogin }: { back: string; onLogin: (user: string) => void }) {
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const session = await api.login(user, password);
      setPassword("");
      onLogin(session.user);
      navigate(back.startsWith("#/") && !back.startsWith("#/login") ? back : "#/");
    } catch (failure) {
      setError(sentence((failure as Error).message));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="narrow">
      <h1>Log in</h1>
      <form class="card login" onSubmit={submit}>
        <label>
          User name
          <input
            name="user"
            autocomplete="username"
            required
            value={user}
            onInput={(event) => setUser((event.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(event) => setPassword((event.target as HTMLInputElement).value)}
          />
        </label>
        {error && (
          <p class="error-text" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          Log in
        </button>
        <p class="muted small">The same user name and password as for pushing and pulling.</p>
      </form>
    </main>
  );
}
