package weft.interop;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import org.apache.flink.statefun.flink.harness.Harness;
import org.apache.flink.statefun.flink.harness.io.SerializableConsumer;
import org.apache.flink.statefun.flink.harness.io.SerializableSupplier;
import org.apache.flink.statefun.sdk.io.EgressIdentifier;
import org.apache.flink.statefun.sdk.io.IngressIdentifier;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;

/**
 * Runs Apache Flink StateFun 3.3.0 in this JVM on a local Flink mini cluster (parallelism 1),
 * with the remote function endpoints of a module.yaml, for weft's interop suite
 * (test/interop/flink.test.ts).
 *
 * <pre>
 * usage: StatefunInterop &lt;module.yaml URL (file:///...)&gt; &lt;egress ns/name&gt;...
 *
 * stdin  (one message a line):  &lt;function ns/name&gt; TAB &lt;id&gt; TAB &lt;value typename&gt; TAB &lt;base64 value&gt;
 * stdout (one record a line):   WEFT-EGRESS TAB &lt;egress ns/name&gt; TAB &lt;value typename&gt; TAB &lt;base64 value&gt;
 * </pre>
 *
 * The ingress (the harness's supplying ingress) reads stdin; {@link LineRouter} turns each line
 * into a TypedValue message for a remote function. Every egress named on the command line is a
 * consuming egress of TypedValue (the type remote functions' egress messages carry) that prints
 * its records. Closing stdin ends the process.
 */
public final class StatefunInterop {
  static final IngressIdentifier<String> INGRESS =
      new IngressIdentifier<>(String.class, "weft.interop", "lines");

  private StatefunInterop() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: StatefunInterop <module.yaml URL> <egress ns/name>...");
      System.exit(2);
    }
    Harness harness =
        new Harness()
            .withParallelism(1)
            .withFlinkJobName("weft-interop")
            .withConfiguration("statefun.remote.module-name", args[0])
            // A small mini cluster: one slot, little managed and network memory.
            .withConfiguration("taskmanager.numberOfTaskSlots", "1")
            .withConfiguration("taskmanager.memory.managed.size", "32m")
            .withConfiguration("taskmanager.memory.network.min", "16m")
            .withConfiguration("taskmanager.memory.network.max", "16m")
            .withConfiguration("state.backend", "hashmap")
            .withConfiguration("rest.bind-port", "0")
            .withSupplyingIngress(INGRESS, new StdinLines());
    for (int i = 1; i < args.length; i++) {
      String[] name = args[i].split("/", -1);
      if (name.length != 2) throw new IllegalArgumentException("egress must be ns/name: " + args[i]);
      harness.withConsumingEgress(
          new EgressIdentifier<>(name[0], name[1], TypedValue.class), new PrintRecords(args[i]));
    }
    System.out.println("WEFT-STARTING");
    harness.start();
  }

  /** The ingress: the next stdin line; end of input ends the process. */
  static final class StdinLines implements SerializableSupplier<String> {
    private static final long serialVersionUID = 1L;
    private static BufferedReader in;

    @Override
    public String get() {
      try {
        synchronized (StdinLines.class) {
          if (in == null) {
            in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            System.out.println("WEFT-INGRESS-READY");
          }
        }
        String line = in.readLine();
        if (line == null) {
          System.out.println("WEFT-STDIN-CLOSED");
          System.exit(0);
        }
        return line;
      } catch (IOException e) {
        throw new RuntimeException(e);
      }
    }
  }

  /** A consuming egress: prints each record as one line. */
  static final class PrintRecords implements SerializableConsumer<TypedValue> {
    private static final long serialVersionUID = 1L;
    private final String egress;

    PrintRecords(String egress) {
      this.egress = egress;
    }

    @Override
    public void accept(TypedValue value) {
      String line =
          "WEFT-EGRESS\t"
              + egress
              + "\t"
              + value.getTypename()
              + "\t"
              + Base64.getEncoder().encodeToString(value.getValue().toByteArray());
      PrintStream out = System.out;
      synchronized (out) {
        out.println(line);
        out.flush();
      }
    }
  }
}
