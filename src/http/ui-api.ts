import type { ManifestView, RepositoryView, TagView } from "../registry/browse-view.js";

/**
 * The shapes of the web UI's JSON API (`<ui.path>ui/api/...`). Types only: the browser bundle imports
 * this file too, so both sides agree on every field.
 */

export interface UiSession {
  /** Logged-in user; null when anonymous or when auth is off. */
  user: string | null;
  authEnabled: boolean;
  deletesEnabled: boolean;
  /** `host[:port]` of `publicUrl`, for pull commands; null means "the host the page came from". */
  registryHost: string | null;
}

export interface UiRepositoryPage {
  repositories: RepositoryView[];
  /** Cursor for the next page (`last=`), null on the last page. */
  next: string | null;
}

export interface UiTagPage {
  repository: string;
  tags: TagView[];
  next: string | null;
  /** Whether this user may delete tags and manifests here (access policy and `deletes.enabled`). */
  mayDelete: boolean;
}

export interface UiManifest extends ManifestView {
  mayDelete: boolean;
}

/** Every error the API answers has the registry's error body. */
export interface UiErrorBody {
  errors: { code: string; message: string }[];
}
