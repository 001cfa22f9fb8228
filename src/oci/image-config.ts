import { mediaTypes } from "./media-types.js";

/** Config media types whose content is an image config (image-spec config.md, Docker image v1). */
const imageConfigTypes = new Set<string>([
  mediaTypes.ociConfig,
  "application/vnd.docker.container.image.v1+json",
]);

export function isImageConfig(mediaType: string): boolean {
  return imageConfigTypes.has(mediaType);
}

export interface ImageConfigSummary {
  created?: string;
  author?: string;
  architecture?: string;
  os?: string;
  variant?: string;
  user?: string;
  workingDir?: string;
  env: string[];
  entrypoint: string[];
  cmd: string[];
  exposedPorts: string[];
  labels: Record<string, string>;
  history: { created?: string; createdBy?: string; comment?: string; emptyLayer: boolean }[];
}

/**
 * The fields of an image config a person reads (image-spec config.md "Properties"), from the parsed
 * JSON. Whatever a field holds that is not of the spec's type is left out rather than trusted: configs
 * come from clients. Undefined when the JSON is not an object.
 */
export function summarizeImageConfig(json: unknown): ImageConfigSummary | undefined {
  if (!isObject(json)) return undefined;
  const config = isObject(json.config) ? json.config : {};
  const summary: ImageConfigSummary = {
    env: strings(config.Env),
    entrypoint: strings(config.Entrypoint),
    cmd: strings(config.Cmd),
    exposedPorts: isObject(config.ExposedPorts) ? Object.keys(config.ExposedPorts) : [],
    labels: stringRecord(config.Labels),
    history: Array.isArray(json.history)
      ? json.history.filter(isObject).map((entry) => ({
          ...optional("created", entry.created),
          ...optional("createdBy", entry.created_by),
          ...optional("comment", entry.comment),
          emptyLayer: entry.empty_layer === true,
        }))
      : [],
    ...optional("created", json.created),
    ...optional("author", json.author),
    ...optional("architecture", json.architecture),
    ...optional("os", json.os),
    ...optional("variant", json.variant),
    ...optional("user", config.User),
    ...optional("workingDir", config.WorkingDir),
  };
  return summary;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

function stringRecord(value: unknown): Record<string, string> {
  if (!isObject(value)) return {};
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) if (typeof item === "string") out[key] = item;
  return out;
}

function optional<K extends string>(key: K, value: unknown): { [P in K]?: string } {
  return (typeof value === "string" && value !== "" ? { [key]: value } : {}) as { [P in K]?: string };
}
