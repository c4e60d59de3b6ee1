// The LP's control channel: one command line in, one JSON line out (commands: see LpSim.java's header).
// Every command runs on the LP's executor thread, so faults never interleave with its own sends.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import quickfix.Responder;
import quickfix.Session;

final class LpControl {
    private static final char SOH = LpSim.SOH;
    private final LpSim lp;

    LpControl(LpSim lp) { this.lp = lp; }

    // ---- faults (executor thread) ----

    private static String dupResend(String raw, String now) {
        String[] parts = raw.split(String.valueOf(SOH));
        StringBuilder body = new StringBuilder();
        String orig = null;
        for (String f : parts) {
            if (f.isEmpty() || f.startsWith("8=") || f.startsWith("9=") || f.startsWith("10=")) continue;
            if (f.startsWith("43=") || f.startsWith("122=")) continue;
            if (f.startsWith("52=")) {
                orig = f.substring(3);
                body.append("52=").append(now).append(SOH).append("43=Y").append(SOH);
                body.append("122=").append(orig).append(SOH);
                continue;
            }
            body.append(f).append(SOH);
        }
        String head = "8=FIX.4.4" + SOH + "9=" + body.toString().getBytes(StandardCharsets.US_ASCII).length + SOH;
        String msg = head + body;
        int sum = 0;
        for (byte c : msg.getBytes(StandardCharsets.US_ASCII)) sum += c & 0xff;
        return msg + "10=" + String.format("%03d", sum % 256) + SOH;
    }

    String command(String line) throws Exception {
        String[] a = line.trim().split("\\s+", 3);
        String cmd = a[0];
        switch (cmd) {
            case "rate": lp.rate = Double.parseDouble(a[1]); return ok();
            case "pause": lp.paused = true; return ok();
            case "resume": lp.paused = false; return ok();
            case "tick":
                for (LpSim.Peer p : lp.peers.values()) if (a.length < 2 || p.sid.getTargetCompID().equals(a[1])) lp.tick(p);
                return ok();
            default: break;
        }
        if (a.length < 2) return err("usage: " + cmd + " TARGET ...");
        LpSim.Peer p = lp.peers.get(a[1]);
        if (p == null) return err("unknown target " + a[1]);
        Session s = Session.lookupSession(p.sid);
        switch (cmd) {
            case "status": return status(p, s);
            case "skip": s.setNextSenderMsgSeqNum(s.getExpectedSenderNum() + Integer.parseInt(a[2])); return ok();
            case "rewind":
                s.setNextSenderMsgSeqNum(Math.max(1, s.getExpectedSenderNum() - Integer.parseInt(a[2])));
                return ok();
            case "logout":
                if (!s.isLoggedOn()) return err("not logged on");  // logout() would disable the session
                p.reenable = true;
                s.logout(a.length > 2 ? a[2] : "logout on command");
                return ok();
            case "drop": s.disconnect("drop on command", false); return ok();
            case "silent":
                if (s.hasResponder()) s.setResponder(new LpSim.Muted(s.getResponder()));
                return ok();
            case "dup": {
                int n = Integer.parseInt(a[2]);
                int next = s.getExpectedSenderNum();
                List<String> stored = new ArrayList<>();
                s.getStore().get(Math.max(1, next - n), next - 1, stored);
                String now = LpSim.STAMP.format(Instant.now());
                Responder r = s.getResponder();
                for (String raw : stored) if (r != null) r.send(dupResend(raw, now));
                return "{\"ok\":true,\"sent\":" + stored.size() + "}";
            }
            case "sent": {
                String[] range = a[2].split("\\s+");
                List<String> stored = new ArrayList<>();
                s.getStore().get(Integer.parseInt(range[0]), Integer.parseInt(range[1]), stored);
                StringBuilder sb = new StringBuilder("{\"ok\":true,\"messages\":[");
                for (int i = 0; i < stored.size(); i++) sb.append(i > 0 ? "," : "").append(q(stored.get(i)));
                return sb.append("]}").toString();
            }
            default: return err("unknown command " + cmd);
        }
    }

    private String status(LpSim.Peer p, Session s) {
        StringBuilder subs = new StringBuilder("{");
        int i = 0;
        for (LpSim.Sub sub : p.subs.values()) {
            subs.append(i++ > 0 ? "," : "").append(q(sub.id)).append(":[");
            for (int j = 0; j < sub.symbols.size(); j++) subs.append(j > 0 ? "," : "").append(q(sub.symbols.get(j)));
            subs.append("]");
        }
        subs.append("}");
        StringBuilder log = new StringBuilder("[");
        for (int j = 0; j < p.subLog.size(); j++) log.append(j > 0 ? "," : "").append(q(p.subLog.get(j)));
        log.append("]");
        return "{\"ok\":true,\"logged_on\":" + s.isLoggedOn()
                + ",\"next_out\":" + s.getExpectedSenderNum() + ",\"next_in\":" + s.getExpectedTargetNum()
                + ",\"logons\":" + p.logons + ",\"v_received\":" + p.vReceived + ",\"rejects_y\":" + p.rejectsY
                + ",\"unsubscribes\":" + p.unsubscribes + ",\"streams\":" + p.streams
                + ",\"admin_in\":" + counts(p.adminIn) + ",\"admin_out\":" + counts(p.adminOut)
                + ",\"last_reject\":" + q(p.lastReject) + ",\"last_logout_in\":" + q(p.lastLogoutIn)
                + ",\"subs\":" + subs + ",\"sub_log\":" + log + "}";
    }

    private static String counts(Map<String, Integer> m) {
        StringBuilder sb = new StringBuilder("{");
        int i = 0;
        for (Map.Entry<String, Integer> e : m.entrySet()) sb.append(i++ > 0 ? "," : "").append(q(e.getKey())).append(":").append(e.getValue());
        return sb.append("}").toString();
    }

    private static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }

    private static String ok() { return "{\"ok\":true}"; }

    private static String err(String why) { return "{\"ok\":false,\"error\":" + q(why) + "}"; }

    void serve(int port) throws Exception {
        ServerSocket server = new ServerSocket(port, 16, InetAddress.getByName("127.0.0.1"));
        Thread t = new Thread(() -> {
            while (true) {
                try {
                    Socket c = server.accept();
                    Thread h = new Thread(() -> handle(c), "lp-control");
                    h.setDaemon(true);
                    h.start();
                } catch (Exception e) {
                    return;
                }
            }
        }, "lp-control-accept");
        t.setDaemon(true);
        t.start();
    }

    private void handle(Socket c) {
        try (c; BufferedReader in = new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8));
             PrintWriter out = new PrintWriter(c.getOutputStream(), true, StandardCharsets.UTF_8)) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isBlank()) continue;
                final String l = line;
                String reply;
                try {
                    reply = lp.exec.submit(() -> command(l)).get(10, TimeUnit.SECONDS);
                } catch (Exception e) {
                    reply = err(String.valueOf(e.getCause() != null ? e.getCause() : e));
                }
                out.println(reply);
            }
        } catch (Exception e) {
            // client went away
        }
    }
}
