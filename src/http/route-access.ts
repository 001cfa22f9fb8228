import type { Need } from "../auth/authenticator.js";
import { type Action, catalogScope, repositoryScope } from "../auth/scope.js";
import type { RouteName } from "./route-table.js";

const pullPush: Action[] = ["pull", "push"];

/**
 * What each named route needs: reads need pull, writes push (and pull, since clients check with HEAD
 * before they PUT), deletes delete; the catalog needs `registry:catalog:*`; the base endpoint only an identity.
 */
export function neededAccess(route: RouteName, method: string, name: string): Need {
  switch (route) {
    case "base":
      return { kind: "authenticated" };
    case "catalog":
      return { kind: "scope", scope: catalogScope };
    case "tags":
    case "referrers":
      return { kind: "scope", scope: repositoryScope(name, ["pull"]) };
    case "manifest":
    case "blob":
      if (method === "DELETE") return { kind: "scope", scope: repositoryScope(name, ["delete"]) };
      if (method === "PUT") return { kind: "scope", scope: repositoryScope(name, pullPush) };
      return { kind: "scope", scope: repositoryScope(name, ["pull"]) };
    case "blob-upload":
    case "blob-upload-chunk":
      return { kind: "scope", scope: repositoryScope(name, pullPush) };
  }
}
