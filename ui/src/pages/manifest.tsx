import type { ComponentChildren } from "preact";
import {
  api,
  type DescriptorView,
  type ImageConfigView,
  type ReferrerGroupView,
  type UiManifest,
} from "../api.js";
import { DeleteButton, Digest, Failure, Loading, PullCommand, Section, useLoad } from "../components.js";
import { artifactLabel, formatBytes, formatPlatform, formatTime, shortDigest } from "../format.js";
import { href, navigate } from "../route.js";

/** One manifest: what it is, how to pull it, its config and layers or platforms, and its referrers. */
export function ManifestPage({
  repository,
  reference,
  host,
}: {
  repository: string;
  reference: string;
  host: string;
}) {
  const [manifest] = useLoad(() => api.manifest(repository, reference), [repository, reference]);
  const isTag = !reference.includes(":");
  return (
    <main>
      <nav class="crumbs">
        <a href={href.repositories()}>Repositories</a> /{" "}
        <a href={href.repository(repository)}>{repository}</a> /{" "}
        <span>{isTag ? reference : shortDigest(reference)}</span>
      </nav>
      <h1>
        {repository}
        <span class="muted">
          {isTag ? ":" : "@"}
          {isTag ? reference : shortDigest(reference)}
        </span>
      </h1>
      {manifest.state === "loading" && <Loading />}
      {manifest.state === "failed" && <Failure error={manifest.error} />}
      {manifest.state === "done" && (
        <ManifestDetails manifest={manifest.value} reference={reference} isTag={isTag} host={host} />
      )}
    </main>
  );
}

function ManifestDetails({
  manifest,
  reference,
  isTag,
  host,
}: {
  manifest: UiManifest;
  reference: string;
  isTag: boolean;
  host: string;
}) {
  const { repository } = manifest;
  return (
    <>
      <Section title="Overview" testId="overview">
        <dl class="facts">
          <Fact term="Digest">
            <Digest value={manifest.digest} />
          </Fact>
          <Fact term="Media type">{manifest.mediaType}</Fact>
          {/* An image's artifactType is its config's media type: only worth showing for other artifacts. */}
          {manifest.artifactType && !manifest.image && (
            <Fact term="Artifact type">{manifest.artifactType}</Fact>
          )}
          <Fact term="Manifest size">{formatBytes(manifest.size)}</Fact>
          {manifest.totalSize !== null && (
            <Fact term={manifest.kind === "index" ? "Size, all platforms" : "Download size"}>
              {formatBytes(manifest.totalSize)}
            </Fact>
          )}
          {manifest.subject && (
            <Fact term="Refers to">
              <a href={href.manifest(repository, manifest.subject.digest)}>
                {shortDigest(manifest.subject.digest)}
              </a>
            </Fact>
          )}
        </dl>
        <h3>Pull</h3>
        <PullCommand host={host} repository={repository} reference={isTag ? reference : manifest.digest} />
        {isTag && <PullCommand host={host} repository={repository} reference={manifest.digest} />}
        {manifest.mayDelete && (
          <div class="actions-row">
            {isTag && (
              <DeleteButton
                label="Delete tag"
                confirmLabel={`Delete tag ${reference}?`}
                onDelete={async () => {
                  await api.deleteManifest(repository, reference);
                  navigate(href.repository(repository));
                }}
              />
            )}
            <DeleteButton
              label="Delete manifest"
              confirmLabel="Delete the manifest and every tag on it?"
              onDelete={async () => {
                await api.deleteManifest(repository, manifest.digest);
                navigate(href.repository(repository));
              }}
            />
          </div>
        )}
      </Section>
      {manifest.kind === "index" && <Platforms repository={repository} manifests={manifest.manifests} />}
      {manifest.image && <ImageConfig image={manifest.image} />}
      {manifest.layers.length > 0 && <Layers layers={manifest.layers} />}
      {manifest.config && !manifest.image && (
        <Section title="Config">
          <DescriptorTable descriptors={[manifest.config]} />
        </Section>
      )}
      <Referrers
        repository={repository}
        groups={manifest.referrers}
        truncated={manifest.referrersTruncated}
      />
      {manifest.image && manifest.image.history.length > 0 && <History image={manifest.image} />}
      {manifest.annotations && <KeyValues title="Annotations" values={manifest.annotations} />}
      <details class="card">
        <summary>Manifest JSON</summary>
        <pre class="json">{manifest.json}</pre>
      </details>
    </>
  );
}

function Fact({ term, children }: { term: string; children: ComponentChildren }) {
  return (
    <>
      <dt>{term}</dt>
      <dd>{children}</dd>
    </>
  );
}

function Platforms({ repository, manifests }: { repository: string; manifests: DescriptorView[] }) {
  return (
    <Section title="Platforms" testId="platforms">
      <table class="list">
        <thead>
          <tr>
            <th>Platform</th>
            <th>Digest</th>
            <th>Media type</th>
            <th class="number">Manifest size</th>
          </tr>
        </thead>
        <tbody>
          {manifests.map((child) => (
            <tr key={child.digest}>
              <td>{child.platform ? formatPlatform(child.platform) : "—"}</td>
              <td>
                <a href={href.manifest(repository, child.digest)}>
                  <code>{shortDigest(child.digest)}</code>
                </a>
              </td>
              <td class="small">{child.mediaType}</td>
              <td class="number">{formatBytes(child.size)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

function ImageConfig({ image }: { image: ImageConfigView }) {
  const platform = [image.os, image.architecture, image.variant].filter(Boolean).join("/");
  return (
    <Section title="Configuration" testId="config">
      <dl class="facts">
        {image.created && <Fact term="Created">{formatTime(image.created)}</Fact>}
        {platform && <Fact term="Platform">{platform}</Fact>}
        {image.author && <Fact term="Author">{image.author}</Fact>}
        {image.user && <Fact term="User">{image.user}</Fact>}
        {image.workingDir && <Fact term="Working directory">{image.workingDir}</Fact>}
        {image.entrypoint.length > 0 && (
          <Fact term="Entrypoint">
            <code>{JSON.stringify(image.entrypoint)}</code>
          </Fact>
        )}
        {image.cmd.length > 0 && (
          <Fact term="Command">
            <code>{JSON.stringify(image.cmd)}</code>
          </Fact>
        )}
        {image.exposedPorts.length > 0 && <Fact term="Ports">{image.exposedPorts.join(", ")}</Fact>}
      </dl>
      {image.env.length > 0 && (
        <>
          <h3>Environment</h3>
          <ul class="env">
            {image.env.map((entry) => (
              <li key={entry}>
                <code>{entry}</code>
              </li>
            ))}
          </ul>
        </>
      )}
      {Object.keys(image.labels).length > 0 && (
        <>
          <h3>Labels</h3>
          <KeyValueTable values={image.labels} />
        </>
      )}
    </Section>
  );
}

function Layers({ layers }: { layers: DescriptorView[] }) {
  const total = layers.reduce((sum, layer) => sum + layer.size, 0);
  return (
    <Section title={`Layers (${layers.length}, ${formatBytes(total)})`} testId="layers">
      <DescriptorTable descriptors={layers} numbered />
    </Section>
  );
}

function DescriptorTable({
  descriptors,
  numbered = false,
}: {
  descriptors: DescriptorView[];
  numbered?: boolean;
}) {
  return (
    <table class="list">
      <thead>
        <tr>
          {numbered && <th class="number">#</th>}
          <th>Digest</th>
          <th>Media type</th>
          <th class="number">Size</th>
        </tr>
      </thead>
      <tbody>
        {descriptors.map((d, i) => (
          <tr key={`${i}-${d.digest}`}>
            {numbered && <td class="number">{i + 1}</td>}
            <td>
              <code title={d.digest}>{shortDigest(d.digest)}</code>
            </td>
            <td class="small">{d.mediaType}</td>
            <td class="number">{formatBytes(d.size)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Referrers({
  repository,
  groups,
  truncated,
}: {
  repository: string;
  groups: ReferrerGroupView[];
  truncated: boolean;
}) {
  return (
    <Section title="Referrers" testId="referrers">
      {groups.length === 0 && (
        <p class="muted">No signatures, SBOMs or attestations refer to this manifest.</p>
      )}
      {groups.map((group) => (
        <div class="referrer-group" key={group.artifactType} data-artifact-type={group.artifactType}>
          <h3>
            {artifactLabel(group.artifactType)} <span class="muted small">{group.artifactType}</span>
          </h3>
          <ul>
            {group.referrers.map((referrer) => (
              <li key={referrer.digest}>
                <a href={href.manifest(repository, referrer.digest)}>
                  <code>{shortDigest(referrer.digest)}</code>
                </a>{" "}
                <span class="muted small">
                  {formatBytes(referrer.size)}
                  {referrer.annotations?.["org.opencontainers.image.created"] &&
                    ` · ${formatTime(referrer.annotations["org.opencontainers.image.created"])}`}
                </span>
              </li>
            ))}
          </ul>
        </div>
      ))}
      {truncated && <p class="muted small">More referrers exist than are shown here.</p>}
    </Section>
  );
}

function History({ image }: { image: ImageConfigView }) {
  return (
    <Section title="History" testId="history">
      <table class="list">
        <thead>
          <tr>
            <th>Created</th>
            <th>Command</th>
          </tr>
        </thead>
        <tbody>
          {image.history.map((entry, i) => (
            <tr key={i} class={entry.emptyLayer ? "muted" : ""}>
              <td class="nowrap">{formatTime(entry.created)}</td>
              <td>
                <code class="wrap">{entry.createdBy ?? entry.comment ?? ""}</code>
                {entry.emptyLayer && <span class="chip">no layer</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

function KeyValues({ title, values }: { title: string; values: Record<string, string> }) {
  return (
    <Section title={title}>
      <KeyValueTable values={values} />
    </Section>
  );
}

function KeyValueTable({ values }: { values: Record<string, string> }) {
  return (
    <table class="list kv">
      <tbody>
        {Object.entries(values).map(([key, value]) => (
          <tr key={key}>
            <th>{key}</th>
            <td>{value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
