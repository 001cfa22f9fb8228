import type { FastifyReply, FastifyRequest } from "fastify";
import type { Authenticator } from "../../auth/authenticator.js";
import { parseScopes, type Scope } from "../../auth/scope.js";
import { isRepositoryName } from "../../oci/repository-name.js";
import { requestCredentials } from "../credentials.js";

/**
 * `GET /token?service=&scope=&account=`: the built-in token endpoint of the Docker token protocol
 * (distribution docs/spec/auth/token.md). Basic credentials, or none for an anonymous token; the token
 * grants only those requested actions the access policy allows.
 */
export function tokenRoute(authenticator: Authenticator) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const tokens = authenticator.tokens;
    if (!tokens) throw new Error("token route without a token service");
    const principal = await authenticator.login(requestCredentials(request));
    const query = new URLSearchParams((request.raw.url ?? "").split("?")[1] ?? "");
    const requested = parseScopes(query.getAll("scope"));
    const access: Scope[] = [];
    for (const scope of requested) {
      if (scope.type === "repository" && !isRepositoryName(scope.name)) continue;
      const granted = authenticator.grant(principal, scope);
      if (granted) access.push(granted);
    }
    const issued = await tokens.issue(principal.user ?? "", access);
    reply
      .code(200)
      .header("Content-Type", "application/json")
      .header("Cache-Control", "no-store")
      .send(
        JSON.stringify({
          token: issued.token,
          access_token: issued.token,
          expires_in: issued.expiresIn,
          issued_at: issued.issuedAt,
        }),
      );
  };
}
