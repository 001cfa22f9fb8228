import { useState } from "preact/hooks";
import { api, type TagView } from "../api.js";
import { DeleteButton, Failure, Loading, Pager, useLoad } from "../components.js";
import { formatBytes, formatPlatform, formatTime, kindLabel, relativeTime, shortDigest } from "../format.js";
import { href } from "../route.js";

/** A repository's tags, a page at a time, with what each points at. */
export function RepositoryPage({ name }: { name: string }) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([]);
  const last = cursors[cursors.length - 1];
  const [page, reload] = useLoad(() => api.tags(name, last), [name, last]);
  return (
    <main>
      <nav class="crumbs">
        <a href={href.repositories()}>Repositories</a> / <span>{name}</span>
      </nav>
      <h1>{name}</h1>
      {page.state === "loading" && <Loading />}
      {page.state === "failed" && <Failure error={page.error} />}
      {page.state === "done" && (
        <>
          {page.value.tags.length === 0 ? (
            <p class="muted">This repository has no tags.</p>
          ) : (
            <table class="list" data-testid="tags">
              <thead>
                <tr>
                  <th>Tag</th>
                  <th>Digest</th>
                  <th>Kind</th>
                  <th>Platforms</th>
                  <th
                    class="number"
                    title="Config and layers: what a pull downloads (every platform, for an index)"
                  >
                    Size
                  </th>
                  <th>Pushed</th>
                  {page.value.mayDelete && <th aria-label="Actions" />}
                </tr>
              </thead>
              <tbody>
                {page.value.tags.map((tag) => (
                  <TagRow
                    key={tag.name}
                    repository={name}
                    tag={tag}
                    mayDelete={page.value.mayDelete}
                    onDeleted={reload}
                  />
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

function TagRow({
  repository,
  tag,
  mayDelete,
  onDeleted,
}: {
  repository: string;
  tag: TagView;
  mayDelete: boolean;
  onDeleted: () => void;
}) {
  // Attestation manifests of buildx indexes carry the platform unknown/unknown: not something to run.
  const platforms = (tag.platforms ?? []).filter((p) => p.os !== "unknown");
  return (
    <tr data-tag={tag.name}>
      <td>
        <a href={href.manifest(repository, tag.name)}>{tag.name}</a>
      </td>
      <td>
        <code title={tag.digest}>{shortDigest(tag.digest)}</code>
      </td>
      <td>{kindLabel(tag.mediaType, tag.artifactType)}</td>
      <td>
        {platforms.map((platform) => (
          <span class="chip" key={formatPlatform(platform)}>
            {formatPlatform(platform)}
          </span>
        ))}
      </td>
      <td class="number">{formatBytes(tag.size)}</td>
      <td title={formatTime(tag.pushedAt)}>{relativeTime(tag.pushedAt)}</td>
      {mayDelete && (
        <td class="actions">
          <DeleteButton
            label="Delete"
            confirmLabel={`Delete tag ${tag.name}?`}
            onDelete={async () => {
              await api.deleteManifest(repository, tag.name);
              onDeleted();
            }}
          />
        </td>
      )}
    </tr>
  );
}
