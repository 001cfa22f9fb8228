import { RegistryError } from "./errors.js";

/**
 * Repository names and tags as the distribution-spec "Pulling manifests" section defines them.
 * Every name and tag from a request passes through here before it reaches storage or a query.
 */
const nameGrammar = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagGrammar = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Distribution and most clients cap the name at 255 characters. */
export const maxRepositoryNameLength = 255;

export type RepositoryName = string & { readonly __brand: "RepositoryName" };
export type Tag = string & { readonly __brand: "Tag" };

export function isRepositoryName(input: string): input is RepositoryName {
  return input.length <= maxRepositoryNameLength && nameGrammar.test(input);
}

export function parseRepositoryName(input: string): RepositoryName {
  if (!isRepositoryName(input)) {
    throw new RegistryError("NAME_INVALID", "invalid repository name", {
      detail: { name: input.slice(0, 300) },
    });
  }
  return input;
}

export function isTag(input: string): input is Tag {
  return tagGrammar.test(input);
}

export function parseTag(input: string): Tag {
  if (!isTag(input)) {
    throw new RegistryError("MANIFEST_INVALID", "invalid tag: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", {
      detail: { tag: input.slice(0, 200) },
    });
  }
  return input;
}
