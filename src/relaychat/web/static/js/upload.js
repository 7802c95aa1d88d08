// Uploads: a file dropped on the page, pasted into the message box, or picked with the paperclip
// goes to the server's file host (IRCv3 draft/FILEHOST, the URL from ISUPPORT) and its link is
// said in the conversation on screen, for everyone there (docs/web.md, Uploads).
//
// The session is logged in over the WebSocket, so the page never sends the password again: it
// asks for a one-use token (TOKEN GENERATE FILEHOST, draft/authtoken) and posts the file with
// Authorization: Bearer. Progress and errors are a line in the conversation, updated in place.

const $ = (id) => document.getElementById(id);

/** "512 B", "3.0 KiB", "20.0 MiB". */
export function formatSize(n) {
  let value = n;
  for (const unit of ["B", "KiB", "MiB", "GiB"]) {
    if (value < 1024 || unit === "GiB") return unit === "B" ? `${value} B` : `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${n} B`;
}

/** The Content-Disposition of a file called `name` (RFC 6266: an ASCII name and filename*). */
export function disposition(name) {
  const ascii = [...name].map((c) => (c >= " " && c <= "~" && c !== '"' && c !== "\\" ? c : "_")).join("");
  const star = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return ascii === name ? `attachment; filename="${ascii}"` : `attachment; filename="${ascii}"; filename*=UTF-8''${star}`;
}

/** The upload URL the server announces (draft/FILEHOST: a list, the first http(s) one). */
export function filehostUrl(isupport) {
  for (const key of ["DRAFT/FILEHOST", "SOJU.IM/FILEHOST"]) {
    for (const url of (isupport.get(key) || "").split(" ")) {
      if (/^https?:\/\//.test(url)) return url;
    }
  }
  return null;
}

export class Uploader {
  constructor(app) {
    this.app = app;
    this.limit = null; // the server's largest upload (Upload-Limit on OPTIONS), once known
    const input = $("file-input");
    $("btn-attach").addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";
      this.uploadAll(files);
    });
    $("input").addEventListener("paste", (ev) => {
      const files = [...(ev.clipboardData?.files || [])];
      if (!files.length) return; // text: pasted as usual
      ev.preventDefault();
      this.uploadAll(files);
    });
    const main = document.querySelector("main.main");
    let depth = 0;
    const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");
    main.addEventListener("dragenter", (ev) => {
      if (!hasFiles(ev)) return;
      depth += 1;
      document.body.classList.add("dropping");
    });
    main.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) document.body.classList.remove("dropping");
    });
    main.addEventListener("dragover", (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault(); // allow the drop
      ev.dataTransfer.dropEffect = "copy";
    });
    main.addEventListener("drop", (ev) => {
      depth = 0;
      document.body.classList.remove("dropping");
      const files = [...(ev.dataTransfer?.files || [])];
      if (!files.length) return;
      ev.preventDefault();
      this.uploadAll(files);
    });
  }

  /** Upload `files` one after the other into the conversation on screen now. */
  async uploadAll(files) {
    const buf = this.app.state.active;
    for (const file of files) await this.upload(file, buf);
  }

  async upload(file, buf) {
    const client = this.app.client;
    const where = buf && buf.kind !== "server" ? buf : null;
    const shownIn = where || this.app.state.server;
    const line = client.info(shownIn, `Uploading ${file.name} (${formatSize(file.size)})…`);
    const show = (text, kind = "info") => {
      line.text = text;
      line.kind = kind;
      this.app.state.emit("message-changed", shownIn, { entry: line });
    };
    try {
      if (!where) throw new Error("open a channel or a conversation first: the link goes there");
      const url = filehostUrl(client.isupport);
      if (!client.connected || !url) {
        throw new Error(client.connected ? "this server does not take uploads" : "not connected");
      }
      if (location.protocol === "https:" && url.startsWith("http:")) {
        throw new Error("the server's upload URL is plain http: refusing to send the file in clear");
      }
      if (this.limit === null) this.limit = await this.askLimit(url);
      if (this.limit && file.size > this.limit) {
        throw new Error(`the file is ${formatSize(file.size)}; the largest upload is ${formatSize(this.limit)}`);
      }
      const { token } = await client.fileToken();
      const link = await this.post(url, token, file, (sent) => {
        const share = file.size ? Math.floor((100 * sent) / file.size) : 100;
        show(`Uploading ${file.name}: ${share}% of ${formatSize(file.size)}`);
      });
      show(`Uploaded ${file.name} (${formatSize(file.size)})`);
      client.say(where, link);
    } catch (err) {
      show(`Upload of ${file.name} failed: ${err.message || err}`, "error");
    }
  }

  /** The largest upload the server takes, from OPTIONS (0 when it does not say). */
  async askLimit(url) {
    try {
      const answer = await fetch(url, { method: "OPTIONS" });
      const m = /max-size=(\d+)/.exec(answer.headers.get("Upload-Limit") || "");
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  }

  /** POST the file; resolve with its link, reject with the server's one-line reason. */
  post(url, token, file, progress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.setRequestHeader("Content-Disposition", disposition(file.name || "file"));
      xhr.upload.addEventListener("progress", (ev) => progress(ev.loaded));
      xhr.addEventListener("load", () => {
        if (xhr.status === 201) {
          const where = xhr.getResponseHeader("Location");
          let link = where ? new URL(where, url).href : "";
          if (!link) {
            try {
              link = JSON.parse(xhr.responseText).url || "";
            } catch { /* no JSON */ }
          }
          if (link) resolve(link);
          else reject(new Error("the server stored the file but gave no link"));
          return;
        }
        const reason = (xhr.responseText || "").trim().split("\n")[0];
        reject(new Error(reason || `the server answered ${xhr.status}`));
      });
      xhr.addEventListener("error", () => reject(new Error("the connection to the server failed")));
      xhr.addEventListener("abort", () => reject(new Error("cancelled")));
      xhr.send(file);
    });
  }
}
