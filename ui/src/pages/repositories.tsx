import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { Failure, Loading, Pager, useLoad } from "../components.js";
import { relativeTime } from "../format.js";
import { href, navigate } from "../route.js";

/** Every repository the viewer may pull, searched and paged by the server. */
export function RepositoriesPage({ q, anonymous }: { q: string; anonymous: boolean }) {
  const [input, setInput] = useState(q);
  // Cursors of the pages before this one, so "Previous" can go back without the server keeping state.
  const [paging, setPaging] = useState<{ q: string; cursors: (string | undefined)[] }>({ q, cursors: [] });
  const cursors = paging.q === q ? paging.cursors : [];
  const setCursors = (list: (string | undefined)[]) => setPaging({ q, cursors: list });
  const last = cursors[cursors.length - 1];
  const [page] = useLoad(() => api.repositories(q, last), [q, last]);

  useEffect(() => setInput(q), [q]);
  useEffect(() => {
    if (input === q) return;
    const timer = setTimeout(() => {
      navigate(href.repositories(input), true);
    }, 250);
    return () => clearTimeout(timer);
  }, [input, q]);

  return (
    <main>
      <h1>Repositories</h1>
      <form
        class="search"
        onSubmit={(event) => {
          event.preventDefault();
          navigate(href.repositories(input), true);
        }}
      >
        <input
          type="search"
          name="q"
          placeholder="Search repositories"
          aria-label="Search repositories"
          value={input}
          onInput={(event) => setInput((event.target as HTMLInputElement).value)}
        />
      </form>
      {anonymous && (
        <p class="muted small">
          You are browsing without logging in: <a href={href.login("#/")}>log in</a> to see every repository
          you have access to.
        </p>
      )}
      {page.state === "loading" && <Loading />}
      {page.state === "failed" && <Failure error={page.error} />}
      {page.state === "done" && (
        <>
          {page.value.repositories.length === 0 ? (
            <p class="muted">
              {page.value.next !== null
                ? "None you may see among the repositories searched so far; Next searches on."
                : q
                  ? `No repository matches “${q}”.`
                  : "No repositories yet."}
            </p>
          ) : (
            <table class="list" data-testid="repositories">
              <thead>
                <tr>
                  <th>Name</th>
                  <th class="number">Tags</th>
                  <th>Last push</th>
                </tr>
              </thead>
              <tbody>
                {page.value.repositories.map((repository) => (
                  <tr key={repository.name}>
                    <td>
                      <a href={href.repository(repository.name)}>{repository.name}</a>
                    </td>
                    <td class="number">{repository.tagCount}</td>
                    <td title={new Date(repository.updatedAt).toISOString()}>
                      {relativeTime(repository.updatedAt)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <Pager cursors={cursors} next={page.value.next} onChange={setCursors} />
        </>
      )}
    </main>
  );
}
