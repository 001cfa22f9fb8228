import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api.js";
import { sentence } from "./format.js";
import { href } from "./route.js";

export type Loadable<T> =
  | { state: "loading" }
  | { state: "done"; value: T }
  | { state: "failed"; error: Error };

/** Runs `load` whenever `deps` change; a result that arrives after the deps moved on is dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [Loadable<T>, () => void] {
  const [result, setResult] = useState<Loadable<T>>({ state: "loading" });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setResult({ state: "loading" });
    load().then(
      (value) => current && setResult({ state: "done", value }),
      (error: Error) => current && setResult({ state: "failed", error }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  return [result, () => setRound((r) => r + 1)];
}

export function Loading() {
  return (
    <p class="muted" role="status">
      Loading…
    </p>
  );
}

/** An API failure in words, with a way to log in when that is what is missing. */
export function Failure({ error }: { error: Error }) {
  const needsLogin = error instanceof ApiError && error.code === "UNAUTHORIZED";
  return (
    <div class="notice error" role="alert">
      <p>{sentence(error.message)}</p>
      {needsLogin && (
        <p>
          <a class="button" href={href.login(location.hash)}>
            Log in
          </a>
        </p>
      )}
    </div>
  );
}

/** The pull command for a reference, with a button that copies it. */
export function PullCommand({
  host,
  repository,
  reference,
}: {
  host: string;
  repository: string;
  reference: string;
}) {
  const separator = reference.includes(":") ? "@" : ":";
  const command = `docker pull ${host}/${repository}${separator}${reference}`;
  const [copied, setCopied] = useState<"" | "copied" | "failed">("");
  const copy = async () => {
    try {
      await copyText(command);
      setCopied("copied");
    } catch {
      setCopied("failed");
    }
    setTimeout(() => setCopied(""), 2000);
  };
  return (
    <div class="pull">
      <code data-testid="pull-command">{command}</code>
      <button type="button" onClick={copy} aria-label="Copy pull command">
        {copied === "copied" ? "Copied" : copied === "failed" ? "Select and copy" : "Copy"}
      </button>
    </div>
  );
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-HTTP pages on another host get no Clipboard API: fall back to a selected text area.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

/** A delete button that asks once more before it acts. */
export function DeleteButton({
  label,
  confirmLabel,
  onDelete,
}: {
  label: string;
  confirmLabel: string;
  onDelete: () => Promise<void>;
}) {
  const [stage, setStage] = useState<"idle" | "confirm" | "busy">("idle");
  const [error, setError] = useState<string>();
  const click = async () => {
    if (stage === "idle") {
      setStage("confirm");
      return;
    }
    setStage("busy");
    try {
      await onDelete();
    } catch (failure) {
      setError(sentence((failure as Error).message));
      setStage("idle");
    }
  };
  return (
    <span class="delete">
      <button type="button" class="danger" disabled={stage === "busy"} onClick={click}>
        {stage === "idle" ? label : confirmLabel}
      </button>
      {stage === "confirm" && (
        <button type="button" class="link" onClick={() => setStage("idle")}>
          Cancel
        </button>
      )}
      {error && (
        <span class="error-text" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

export function Section({
  title,
  children,
  testId,
}: {
  title: string;
  children: ComponentChildren;
  testId?: string;
}) {
  return (
    <section class="card" data-testid={testId}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

export function Digest({ value }: { value: string }) {
  return (
    <code class="digest" title={value}>
      {value}
    </code>
  );
}

/**
 * Previous/Next over a keyset-paged listing: `cursors` holds the `last` cursor of every page before this
 * one, `next` the cursor of the following page (null on the last page).
 */
export function Pager({
  cursors,
  next,
  onChange,
}: {
  cursors: (string | undefined)[];
  next: string | null;
  onChange: (cursors: (string | undefined)[]) => void;
}) {
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled={cursors.length === 0} onClick={() => onChange(cursors.slice(0, -1))}>
        Previous
      </button>
      <span class="muted">Page {cursors.length + 1}</span>
      <button
        type="button"
        disabled={next === null}
        onClick={() => onChange([...cursors, next ?? undefined])}
      >
        Next
      </button>
    </nav>
  );
}
