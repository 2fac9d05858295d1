export const CSS = `
:host{all:initial}
*{box-sizing:border-box;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.launcher{position:fixed;z-index:var(--z,2147483000);padding:10px 16px;border:0;border-radius:999px;background:var(--bg,#1d4ed8);color:var(--fg,#fff);font-size:14px;font-weight:600;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25)}
.launcher:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.bottom-right{right:16px;bottom:16px}.bottom-left{left:16px;bottom:16px}.top-right{right:16px;top:16px}.top-left{left:16px;top:16px}
.backdrop{position:fixed;inset:0;z-index:var(--z,2147483000);background:rgba(0,0,0,.45);display:flex;align-items:center;justify-content:center;padding:8px}
.dialog{background:#fff;color:#111;width:100%;max-width:440px;max-height:calc(100vh - 16px);overflow:auto;border-radius:10px;padding:18px;box-shadow:0 10px 30px rgba(0,0,0,.3);font-size:14px}
h2{margin:0 0 8px;font-size:18px}
p{margin:0 0 12px;line-height:1.4}
label{display:block;font-weight:600;margin:10px 0 4px}
textarea,input,select{display:block;width:100%;font-size:14px;padding:8px;border:1px solid #888;border-radius:6px;background:#fff;color:#111}
textarea{min-height:96px;resize:vertical}
.row{display:flex;gap:8px;justify-content:flex-end;margin-top:16px;flex-wrap:wrap}
button{font-size:14px;padding:8px 14px;border-radius:6px;border:1px solid #888;background:#f3f4f6;color:#111;cursor:pointer}
button.primary{background:var(--bg,#1d4ed8);color:var(--fg,#fff);border-color:transparent}
button[disabled]{opacity:.6;cursor:default}
.err{color:#b91c1c;margin-top:4px;font-size:13px}
.hp{position:absolute!important;left:-10000px!important;width:1px;height:1px;overflow:hidden}
code{font-family:ui-monospace,monospace;word-break:break-all;background:#f3f4f6;padding:2px 4px;border-radius:4px}
.shot{margin-top:12px}
figure{display:flex;gap:10px;align-items:flex-start;margin:0}
img.preview{display:block;max-width:45%;max-height:120px;border:1px solid #888;border-radius:6px}
figcaption{flex:1;font-size:13px;color:#4b5563}
figcaption button{display:block;margin-top:8px}
[hidden]{display:none!important}
`;
