import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Certificates {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A throwaway CA, a server certificate for 127.0.0.1, and a client certificate for `clientName`. */
export function makeCertificates(dir: string, clientName: string): Certificates {
  const openssl = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl([
    "req",
    "-x509",
    ...ecKey,
    "-days",
    "2",
    "-subj",
    "/CN=berth test CA",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
  ]);
  const issue = (name: string, subject: string, extension: string) => {
    writeFileSync(join(dir, `${name}.ext`), `${extension}\n`);
    openssl(["req", ...ecKey, "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`]);
    openssl([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    ]);
  };
  issue("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1");
  issue("client", `/CN=${clientName}`, "extendedKeyUsage=clientAuth");
  return {
    caCert: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.crt"),
    clientKey: join(dir, "client.key"),
  };
}
