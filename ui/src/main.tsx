import "./style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, type UiSession } from "./api.js";
import { Failure, Loading } from "./components.js";
import { LoginPage } from "./pages/login.js";
import { ManifestPage } from "./pages/manifest.js";
import { RepositoriesPage } from "./pages/repositories.js";
import { RepositoryPage } from "./pages/repository.js";
import { href, navigate, useRoute } from "./route.js";

function App() {
  const route = useRoute();
  const [session, setSession] = useState<UiSession>();
  const [error, setError] = useState<Error>();
  useEffect(() => {
    api.session().then(setSession, setError);
  }, []);
  if (error) return <Failure error={error} />;
  if (!session) return <Loading />;

  const host = session.registryHost ?? location.host;
  const logout = async () => {
    await api.logout();
    setSession({ ...session, user: null });
    navigate("#/");
  };
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          berth
        </a>
        <span class="muted small">{host}</span>
        <span class="spacer" />
        {session.authEnabled &&
          (session.user ? (
            <span class="user">
              <span data-testid="user">{session.user}</span>
              <button type="button" class="link" onClick={logout}>
                Log out
              </button>
            </span>
          ) : (
            route.page !== "login" && (
              <a class="button" href={href.login(location.hash)}>
                Log in
              </a>
            )
          ))}
      </header>
      {/* Keyed by user, so every page reloads what it shows when the login changes. */}
      <div key={session.user ?? ""}>
        {route.page === "repositories" && (
          <RepositoriesPage q={route.q} anonymous={session.authEnabled && !session.user} />
        )}
        {route.page === "repository" && <RepositoryPage key={route.name} name={route.name} />}
        {route.page === "manifest" && (
          <ManifestPage repository={route.repository} reference={route.reference} host={host} />
        )}
        {route.page === "login" && (
          <LoginPage back={route.back} onLogin={(user) => setSession({ ...session, user })} />
        )}
      </div>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
