// A FIX 4.4 liquidity provider for tests and `tickwire simulate fix`: a QuickFIX/J 2.3.2 SocketAcceptor
// with UseDataDictionary=Y, so the real engine validates every message the initiator sends.
//
// It answers MarketDataRequest (V): 263=1 -> a W snapshot per symbol, then X incrementals at --rate per
// second (279 new/change/delete with 278 ids, 55 inside each entry, 272/273 entry date/time, and a 269=2
// trade every 4th tick when trades were asked for); 263=0 -> one W; 263=2 -> the subscription with that
// MDReqID ends. Unknown symbols and MDReqIDs -> Y (281). Subscriptions end with the connection.
//
// Control channel: one line per command on --control-port, one JSON line back. Commands (TARGET is the
// initiator's SenderCompID, i.e. our TargetCompID):
//   status TARGET | sent TARGET FROM TO | tick [TARGET] | rate N | pause | resume
//   skip TARGET N     next outbound MsgSeqNum jumps by N (the peer sees a gap)
//   rewind TARGET N   next outbound MsgSeqNum goes back by N without PossDup (the peer must log out)
//   dup TARGET N      the last N stored messages sent again with 43=Y and 122 (PossDup resend)
//   logout TARGET [TEXT] | drop TARGET (TCP closed, no Logout) | silent TARGET (nothing more is sent on
//   this connection: no data, heartbeats or answers to TestRequest)
// Options: --host --port --control-port --sender --targets A,B --symbols SYM=PX,... --rate --seed
//   --store memory|DIR --parent-pid PID (exit when that process is gone).
import java.io.ByteArrayInputStream;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import quickfix.Application;
import quickfix.DefaultMessageFactory;
import quickfix.FileStoreFactory;
import quickfix.Group;
import quickfix.MemoryStoreFactory;
import quickfix.Message;
import quickfix.MessageStoreFactory;
import quickfix.Responder;
import quickfix.SLF4JLogFactory;
import quickfix.Session;
import quickfix.SessionID;
import quickfix.SessionSettings;
import quickfix.SocketAcceptor;

public final class LpSim implements Application {
    static final char SOH = '\u0001';
    private static final DateTimeFormatter DATE = DateTimeFormatter.ofPattern("yyyyMMdd").withZone(ZoneOffset.UTC);
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSS").withZone(ZoneOffset.UTC);
    static final DateTimeFormatter STAMP =
            DateTimeFormatter.ofPattern("yyyyMMdd-HH:mm:ss.SSS").withZone(ZoneOffset.UTC);

    static final class Level { BigDecimal px; long size; String id; }

    static final class Book {
        final Level bid = new Level();
        final Level ask = new Level();
        int ticks;
    }

    static final class Sub {
        final String id;
        final List<String> symbols;
        final Set<Character> types;
        final int depth;
        final Map<String, Book> books = new LinkedHashMap<>();
        Sub(String id, List<String> symbols, Set<Character> types, int depth) {
            this.id = id; this.symbols = symbols; this.types = types; this.depth = depth;
        }
    }

    static final class Peer {
        final SessionID sid;
        final Map<String, Sub> subs = new LinkedHashMap<>();
        final List<String> subLog = new ArrayList<>();  // "logon#:MDReqID:263:symbols"
        final Map<String, Integer> adminIn = new LinkedHashMap<>();
        final Map<String, Integer> adminOut = new LinkedHashMap<>();
        int logons, vReceived, rejectsY, unsubscribes, streams;
        volatile boolean reenable;  // a logout on command: accept logons again once it is done
        String lastReject = "";
        String lastLogoutIn = "";
        volatile boolean loggedOn;
        Peer(SessionID sid) { this.sid = sid; }
    }

    /** Drops everything written on the current connection (it is replaced on the next connection). */
    static final class Muted implements Responder {
        private final Responder inner;
        Muted(Responder inner) { this.inner = inner; }
        @Override public boolean send(String data) { return true; }
        @Override public void disconnect() { inner.disconnect(); }
        @Override public String getRemoteAddress() { return inner.getRemoteAddress(); }
    }

    private final Map<String, BigDecimal> start = new LinkedHashMap<>();
    final Map<String, Peer> peers = new ConcurrentHashMap<>();
    final ScheduledExecutorService exec = Executors.newSingleThreadScheduledExecutor();
    private final Random rng;
    volatile double rate;
    volatile boolean paused;
    private long ids;

    LpSim(Map<String, BigDecimal> symbols, double rate, long seed) {
        this.start.putAll(symbols);
        this.rate = rate;
        this.rng = new Random(seed);
    }

    // ---- QuickFIX/J callbacks (engine threads); state changes hop onto the one executor thread ----

    @Override public void onCreate(SessionID sid) { peers.put(sid.getTargetCompID(), new Peer(sid)); }

    @Override public void onLogon(SessionID sid) {
        run(() -> { Peer p = peer(sid); p.logons++; p.loggedOn = true; });
    }

    @Override public void onLogout(SessionID sid) {
        Peer peer = peer(sid);
        if (peer.reenable) {  // Session.logout() disables the session; the LP takes the next logon again
            peer.reenable = false;
            Session s = Session.lookupSession(sid);
            if (s != null) s.logon();
        }
        run(() -> { Peer p = peer(sid); p.loggedOn = false; p.subs.clear(); });
    }

    @Override public void toAdmin(Message m, SessionID sid) {
        String type = type(m);
        run(() -> {
            Peer p = peer(sid);
            p.adminOut.merge(type, 1, Integer::sum);
            if (type.equals("3")) p.lastReject = m.toString().replace(SOH, '|');
        });
    }

    @Override public void fromAdmin(Message m, SessionID sid) throws quickfix.FieldNotFound {
        String type = type(m);
        String text = type.equals("5") && m.isSetField(58) ? m.getString(58) : null;
        run(() -> {
            Peer p = peer(sid);
            p.adminIn.merge(type, 1, Integer::sum);
            if (text != null) p.lastLogoutIn = text;
        });
    }

    @Override public void toApp(Message m, SessionID sid) { }

    @Override public void fromApp(Message m, SessionID sid) {
        if (!type(m).equals("V")) return;
        run(() -> onRequest(peer(sid), m));
    }

    // ---- market data (executor thread) ----

    private void onRequest(Peer p, Message m) {
        try {
            p.vReceived++;
            String id = m.getString(262);
            char kind = m.getChar(263);
            int depth = m.getInt(264);
            List<String> symbols = new ArrayList<>();
            for (Group g : m.getGroups(146)) symbols.add(g.getString(55));
            Set<Character> types = new HashSet<>();
            for (Group g : m.getGroups(267)) types.add(g.getChar(269));
            p.subLog.add(p.logons + ":" + id + ":" + kind + ":" + String.join(",", symbols));
            if (kind == '2') {
                if (p.subs.remove(id) == null) reject(p, id, '0', "unknown MDReqID " + id);
                else p.unsubscribes++;
                return;
            }
            for (String s : symbols) {
                if (!start.containsKey(s)) { reject(p, id, '0', "unknown symbol " + s); return; }
            }
            for (char t : types) {
                if (t != '0' && t != '1' && t != '2') { reject(p, id, '8', "unsupported MDEntryType " + t); return; }
            }
            if (kind == '1' && p.subs.containsKey(id)) { reject(p, id, '1', "duplicate MDReqID " + id); return; }
            Sub sub = new Sub(id, symbols, types, depth == 0 ? 3 : depth);
            for (String s : symbols) {
                Book b = new Book();
                BigDecimal px = start.get(s);
                b.bid.px = px; b.bid.size = 1_000_000; b.bid.id = nextId("B");
                b.ask.px = px.add(pip(px).multiply(BigDecimal.valueOf(3))); b.ask.size = 2_000_000; b.ask.id = nextId("O");
                sub.books.put(s, b);
                snapshot(p, sub, s, b);
            }
            if (kind == '1') { p.subs.put(id, sub); p.streams++; }
        } catch (Exception e) {
            System.err.println("LP request failed: " + e);
        }
    }

    private void reject(Peer p, String id, char reason, String text) {
        Message y = new quickfix.fix44.MarketDataRequestReject();
        y.setString(262, id);
        y.setChar(281, reason);
        y.setString(58, text);
        p.rejectsY++;
        send(p, y);
    }

    private void snapshot(Peer p, Sub sub, String symbol, Book b) {
        Message w = new quickfix.fix44.MarketDataSnapshotFullRefresh();
        w.setString(55, symbol);
        w.setString(262, sub.id);
        Instant now = Instant.now();
        BigDecimal pip = pip(b.bid.px);
        for (char side : new char[] {'0', '1'}) {
            if (!sub.types.contains(side)) continue;
            Level top = side == '0' ? b.bid : b.ask;
            for (int i = 0; i < sub.depth; i++) {
                Group g = new quickfix.fix44.MarketDataSnapshotFullRefresh.NoMDEntries();
                BigDecimal step = pip.multiply(BigDecimal.valueOf(i));
                g.setChar(269, side);
                g.setString(270, (side == '0' ? top.px.subtract(step) : top.px.add(step)).toPlainString());
                g.setString(271, Long.toString(top.size * (i + 1)));
                g.setString(272, DATE.format(now));
                g.setString(273, TIME.format(now));
                w.addGroup(g);
            }
        }
        send(p, w);
    }

    void tick(Peer p) {
        if (!p.loggedOn) return;
        for (Sub sub : p.subs.values()) {
            for (Map.Entry<String, Book> e : sub.books.entrySet()) {
                String symbol = e.getKey();
                Book b = e.getValue();
                Message x = new quickfix.fix44.MarketDataIncrementalRefresh();
                x.setString(262, sub.id);
                Instant now = Instant.now();
                int move = rng.nextInt(3) - 1;
                BigDecimal pip = pip(b.bid.px);
                for (char side : new char[] {'0', '1'}) {
                    if (!sub.types.contains(side)) continue;
                    Level l = side == '0' ? b.bid : b.ask;
                    if (move == 0) {
                        l.size = 500_000L * (1 + rng.nextInt(8));
                        x.addGroup(entry('1', side, l.id, symbol, l.px, l.size, now));
                    } else {
                        x.addGroup(entry('2', side, l.id, symbol, l.px, 0, now));
                        l.px = l.px.add(pip.multiply(BigDecimal.valueOf(move)));
                        l.id = nextId(side == '0' ? "B" : "O");
                        l.size = 500_000L * (1 + rng.nextInt(8));
                        x.addGroup(entry('0', side, l.id, symbol, l.px, l.size, now));
                    }
                }
                b.ticks++;
                if (sub.types.contains('2') && b.ticks % 4 == 0) {
                    x.addGroup(entry('0', '2', nextId("T"), symbol, b.ask.px, 100_000L * (1 + rng.nextInt(9)), now));
                }
                if (x.getGroupCount(268) > 0) send(p, x);
            }
        }
    }

    private static Group entry(char action, char type, String id, String symbol, BigDecimal px, long size, Instant t) {
        Group g = new quickfix.fix44.MarketDataIncrementalRefresh.NoMDEntries();
        g.setChar(279, action);
        g.setChar(269, type);
        g.setString(278, id);
        g.setString(55, symbol);
        g.setString(270, px.toPlainString());
        if (action != '2') g.setString(271, Long.toString(size));
        g.setString(272, DATE.format(t));
        g.setString(273, TIME.format(t));
        return g;
    }

    private static BigDecimal pip(BigDecimal px) { return BigDecimal.ONE.movePointLeft(px.scale()); }

    private String nextId(String prefix) { return prefix + (++ids); }

    private static void send(Peer p, Message m) {
        Session s = Session.lookupSession(p.sid);
        if (s != null) s.send(m);
    }

    // ---- plumbing ----

    private Peer peer(SessionID sid) { return peers.computeIfAbsent(sid.getTargetCompID(), k -> new Peer(sid)); }

    private static String type(Message m) {
        try { return m.getHeader().getString(35); } catch (Exception e) { return "?"; }
    }

    private void run(Runnable r) {
        exec.execute(() -> { try { r.run(); } catch (RuntimeException e) { System.err.println("LP: " + e); } });
    }

    private void loop() {
        exec.schedule(() -> {
            try {
                if (!paused && rate > 0) for (Peer p : peers.values()) tick(p);
            } catch (RuntimeException e) {
                System.err.println("LP tick failed: " + e);
            } finally {
                loop();
            }
        }, rate > 0 ? Math.max(1L, (long) (1_000_000 / rate)) : 100_000L, TimeUnit.MICROSECONDS);
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new LinkedHashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        Map<String, BigDecimal> symbols = new LinkedHashMap<>();
        for (String kv : a.getOrDefault("symbols", "EUR/USD=1.08215,GBP/USD=1.26530,USD/JPY=151.205").split(",")) {
            String[] p = kv.split("=");
            symbols.put(p[0].trim(), new BigDecimal(p[1].trim()));
        }
        String sender = a.getOrDefault("sender", "LP_ALPHA");
        List<String> targets = new ArrayList<>();
        Collections.addAll(targets, a.getOrDefault("targets", "TICKWIRE").split(","));
        StringBuilder cfg = new StringBuilder();
        cfg.append("[default]\nConnectionType=acceptor\nBeginString=FIX.4.4\n")
           .append("SocketAcceptAddress=").append(a.getOrDefault("host", "127.0.0.1")).append('\n')
           .append("SocketAcceptPort=").append(a.getOrDefault("port", "9878")).append('\n')
           .append("StartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=Y\nDataDictionary=FIX44.xml\n")
           .append("PersistMessages=Y\nResetOnLogon=N\nResetOnLogout=N\nResetOnDisconnect=N\n")
           .append("ValidateUserDefinedFields=Y\nAllowUnknownMsgFields=N\n")
           .append("SenderCompID=").append(sender).append('\n');
        String store = a.getOrDefault("store", "memory");
        if (!store.equals("memory")) cfg.append("FileStorePath=").append(store).append('\n');
        for (String t : targets) cfg.append("[session]\nTargetCompID=").append(t.trim()).append('\n');
        SessionSettings settings = new SessionSettings(new ByteArrayInputStream(cfg.toString().getBytes(StandardCharsets.UTF_8)));
        LpSim app = new LpSim(symbols, Double.parseDouble(a.getOrDefault("rate", "2")), Long.parseLong(a.getOrDefault("seed", "1")));
        MessageStoreFactory stores = store.equals("memory") ? new MemoryStoreFactory() : new FileStoreFactory(settings);
        SocketAcceptor acceptor = new SocketAcceptor(app, stores, settings, new SLF4JLogFactory(settings), new DefaultMessageFactory());
        acceptor.start();
        new LpControl(app).serve(Integer.parseInt(a.getOrDefault("control-port", "9879")));
        app.loop();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> acceptor.stop(true)));
        if (a.containsKey("parent-pid")) {  // die with the process that started us, however it ended
            long parent = Long.parseLong(a.get("parent-pid"));
            app.exec.scheduleAtFixedRate(() -> {
                if (ProcessHandle.of(parent).map(ProcessHandle::isAlive).orElse(false)) return;
                System.err.println("LP: parent " + parent + " is gone, exiting");
                System.exit(0);
            }, 1, 1, TimeUnit.SECONDS);
        }
        System.out.println("LP READY port=" + a.getOrDefault("port", "9878") + " control=" + a.getOrDefault("control-port", "9879")
                + " sender=" + sender + " targets=" + String.join(",", targets));
        System.out.flush();
        Thread.currentThread().join();
    }
}
