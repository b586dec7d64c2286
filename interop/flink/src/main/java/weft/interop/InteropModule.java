package weft.interop;

import java.util.Map;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule;

/** Binds the router of the stdin ingress (found by the harness through the service loader). */
public final class InteropModule implements StatefulFunctionModule {
  @Override
  public void configure(Map<String, String> globalConfiguration, Binder binder) {
    binder.bindIngressRouter(StatefunInterop.INGRESS, new LineRouter());
  }
}
