"""ActiveMQ's configuration for one unit: the broker's Spring XML from the site, its web console beside it."""

from __future__ import annotations

from xml.sax.saxutils import escape

from sandboxes.brokers.base import Site

from .console import console_beans, management_xml

_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <!-- Written by Broker Academy; rewritten on every start. -->
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="sandbox" dataDirectory="{data}"
          useJmx="true" advisorySupport="true" schedulerSupport="false">
    <destinationPolicy><policyMap><policyEntries>
      <policyEntry queue="&gt;" advisoryForDelivery="true" advisoryForConsumed="true" includeBodyForAdvisory="true"/>
      <policyEntry topic="&gt;" advisoryForDelivery="true" advisoryForConsumed="true" includeBodyForAdvisory="true"/>
    </policyEntries></policyMap></destinationPolicy>
    {management}
    <plugins><statisticsBrokerPlugin/></plugins>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="{memory_mb} mb"/></memoryUsage>
      <storeUsage><storeUsage limit="{store_mb} mb"/></storeUsage>
      <tempUsage><tempUsage limit="{temp_mb} mb"/></tempUsage>
    </systemUsage></systemUsage>
    <persistenceAdapter><kahaDB directory="{data}/kahadb" journalMaxFileLength="8mb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://{bind}:{openwire}?maximumConnections={conns}&amp;wireFormat.maxFrameSize={frame}"/>
      <transportConnector name="stomp" uri="stomp://{bind}:{stomp}?maximumConnections={conns}&amp;transport.maxFrameSize={frame}"/>
    </transportConnectors>
  </broker>
{console}</beans>
"""


def broker_xml(site: Site, *, jmx_password: str) -> str:
    """The text of activemq.xml: advisories with bodies, the statistics plugin, the site's limits and ports, the console."""
    limits = site.limits
    return _XML.format(
        management=management_xml(site),
        console=console_beans(site, jmx_password=jmx_password),
        data=escape(str(site.data_dir / "data")),
        memory_mb=max(16, limits.heap_mb // 4),  # messages held in memory; the rest of the heap runs the broker
        store_mb=max(32, limits.store_mb * 4 // 5),
        temp_mb=max(16, limits.store_mb // 5),
        bind=site.bind,
        openwire=site.ports["openwire"],
        stomp=site.ports["stomp"],
        conns=limits.max_connections,
        frame=limits.max_message_bytes + 64 * 1024,  # room for headers around the largest allowed body
    )
