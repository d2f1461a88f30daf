//! The init container that prepares the gateway's state dir on the PVC before the
//! gateway starts (docs/product/instances.md#state-directory), the Kubernetes counterpart of the local runtime's
//! `state_dir::prepare_state_dir`: `credentials/` and `state/` exist with mode 700,
//! `openclaw.json` has mode 600 and carries the platform's keys from the ConfigMap
//! merged over whatever the user changed; a hand-written JSON5 config is left alone.
//! It runs with the gateway image's own `node`.

/// Where the ConfigMap is mounted in the init container.
pub const BASE_CONFIG_DIR: &str = "/etc/clawfleet";

/// `node -e` program; reads `OPENCLAW_STATE_DIR` and `CLAWFLEET_BASE_CONFIG`.
pub const PREPARE_STATE_DIR_JS: &str = r#"const fs = require("fs"), path = require("path");
const dir = process.env.OPENCLAW_STATE_DIR;
const base = JSON.parse(fs.readFileSync(process.env.CLAWFLEET_BASE_CONFIG, "utf8"));
for (const sub of ["", "credentials", "state"]) {
  fs.mkdirSync(path.join(dir, sub), { recursive: true });
  fs.chmodSync(path.join(dir, sub), 0o700);
}
const file = path.join(dir, "openclaw.json");
let config = {};
if (fs.existsSync(file)) {
  try {
    config = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    console.error("openclaw.json is not plain JSON; leaving it unchanged");
    fs.chmodSync(file, 0o600);
    process.exit(0);
  }
}
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
if (!isObject(config)) config = {};
const merge = (into, from) => {
  for (const [key, value] of Object.entries(from)) {
    if (isObject(value)) {
      if (!isObject(into[key])) into[key] = {};
      merge(into[key], value);
    } else {
      into[key] = value;
    }
  }
};
merge(config, base);
const temporary = file + ".clawfleet-tmp";
fs.writeFileSync(temporary, JSON.stringify(config, null, 2), { mode: 0o600 });
fs.chmodSync(temporary, 0o600);
fs.renameSync(temporary, file);
"#;
